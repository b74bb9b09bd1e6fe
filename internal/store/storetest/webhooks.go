package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseWebhookEndpoints(t *testing.T, open Opener) {
	ctx := context.Background()
	q := store.NewQueries(open(t))
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	if err := q.DoctorUpsertProfile(ctx, doctorProfile("a", at)); err != nil {
		t.Fatal(err)
	}
	str := func(s string) *string { return &s }
	endpoint := func(id, key string) *store.WebhookEndpoint {
		return &store.WebhookEndpoint{ID: id, URL: "https://crm.clinic.example/" + id, Secret: "whsec_" + id,
			CreatedAt: at, UpdatedAt: at, APIKeyID: str(key)}
	}
	e1, e2, e3, other := endpoint("e1", "k1"), endpoint("e2", "k1"), endpoint("e3", "k1"), endpoint("e0", "k2")
	e1.DoctorID = str("id-a")
	e2.Clinic = str("Clinic a")
	e3.Clinic = str("Clinic a")
	for _, e := range []*store.WebhookEndpoint{e3, e1, other, e2} {
		if err := q.WebhookEndpointInsert(ctx, e); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := q.WebhookEndpointGet(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown: %v, want ErrNotFound", err)
	}
	got, err := q.WebhookEndpointGet(ctx, "e1")
	if err != nil {
		t.Fatal(err)
	}
	if got.DoctorID == nil || *got.DoctorID != "id-a" || got.Clinic != nil || got.URL != e1.URL || got.Secret != "whsec_e1" ||
		got.PreviousSecret != "" || got.DisabledAt != nil || got.DisabledReason != "" || !got.CreatedAt.Equal(at) ||
		got.APIKeyID == nil || *got.APIKeyID != "k1" {
		t.Fatalf("get: %+v", got)
	}

	// The key's endpoints by id, a page at a time.
	page, err := q.WebhookEndpointListForAPIKey(ctx, &store.WebhookEndpointListForAPIKeyParams{APIKeyID: "k1", Limit: 2})
	if err != nil || len(page) != 2 || page[0].ID != "e1" || page[1].ID != "e2" {
		t.Fatalf("first page: %+v %v", page, err)
	}
	page, err = q.WebhookEndpointListForAPIKey(ctx, &store.WebhookEndpointListForAPIKeyParams{APIKeyID: "k1", After: "e2", Limit: 2})
	if err != nil || len(page) != 1 || page[0].ID != "e3" || *page[0].Clinic != "Clinic a" {
		t.Fatalf("second page: %+v %v", page, err)
	}

	// Rotation keeps the current secret as the previous one.
	later := at.Add(time.Hour)
	if rotated, err := q.WebhookEndpointRotateSecret(ctx, &store.WebhookEndpointRotateSecretParams{ID: "e1", APIKeyID: "k2", Secret: "whsec_x", Now: later}); err != nil || rotated {
		t.Fatalf("rotate another key's endpoint: %v %v, want false", rotated, err)
	}
	if rotated, err := q.WebhookEndpointRotateSecret(ctx, &store.WebhookEndpointRotateSecretParams{ID: "e1", APIKeyID: "k1", Secret: "whsec_new", Now: later}); err != nil || !rotated {
		t.Fatalf("rotate: %v %v", rotated, err)
	}
	if got, err := q.WebhookEndpointGet(ctx, "e1"); err != nil || got.Secret != "whsec_new" || got.PreviousSecret != "whsec_e1" || !got.UpdatedAt.Equal(later) {
		t.Fatalf("rotated: %+v %v", got, err)
	}

	if deleted, err := q.WebhookEndpointDelete(ctx, &store.WebhookEndpointDeleteParams{ID: "e1", APIKeyID: "k2"}); err != nil || deleted {
		t.Fatalf("delete another key's endpoint: %v %v, want false", deleted, err)
	}
	if deleted, err := q.WebhookEndpointDelete(ctx, &store.WebhookEndpointDeleteParams{ID: "e1", APIKeyID: "k1"}); err != nil || !deleted {
		t.Fatalf("delete: %v %v", deleted, err)
	}
	if _, err := q.WebhookEndpointGet(ctx, "e1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get deleted: %v, want ErrNotFound", err)
	}
}
