package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseIdempotencyKeys(t *testing.T, open Opener) {
	ctx := context.Background()
	q := store.NewQueries(open(t))
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	key := func(apiKey, hash string, expires time.Time) *store.IdempotencyKey {
		return &store.IdempotencyKey{APIKeyID: apiKey, KeyHash: hash, Operation: "sendNotification", RequestHash: "req-" + hash,
			CreatedAt: at, ExpiresAt: expires}
	}
	get := func(apiKey, hash string) (*store.IdempotencyKey, error) {
		return q.IdempotencyKeyGet(ctx, &store.IdempotencyKeyGetParams{APIKeyID: apiKey, KeyHash: hash})
	}

	if _, err := get("k1", "h1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown: %v, want ErrNotFound", err)
	}
	for _, k := range []*store.IdempotencyKey{key("k1", "h1", at.Add(time.Hour)), key("k2", "h1", at.Add(time.Hour)), key("k1", "h2", at)} {
		if recorded, err := q.IdempotencyKeyInsert(ctx, k); err != nil || !recorded {
			t.Fatalf("insert %+v: %v %v", k, recorded, err)
		}
	}
	again := key("k1", "h1", at.Add(2*time.Hour))
	again.RequestHash = "other"
	if recorded, err := q.IdempotencyKeyInsert(ctx, again); err != nil || recorded {
		t.Fatalf("insert a recorded key: %v %v, want false", recorded, err)
	}
	got, err := get("k1", "h1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Operation != "sendNotification" || got.RequestHash != "req-h1" || got.ResponseStatus != 0 || got.ResponseBody != "" ||
		!got.CreatedAt.Equal(at) || !got.ExpiresAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("get: %+v", got)
	}

	if err := q.IdempotencyKeySetResponse(ctx, &store.IdempotencyKeySetResponseParams{APIKeyID: "k1", KeyHash: "h1", Status: 201, Body: `{"id":"n1"}`}); err != nil {
		t.Fatal(err)
	}
	if got, err := get("k1", "h1"); err != nil || got.ResponseStatus != 201 || got.ResponseBody != `{"id":"n1"}` {
		t.Fatalf("after set response: %+v %v", got, err)
	}
	if got, err := get("k2", "h1"); err != nil || got.ResponseStatus != 0 {
		t.Fatalf("another API key's same key: %+v %v, want no response", got, err)
	}

	// Only an expired key is dropped.
	if err := q.IdempotencyKeyDeleteExpired(ctx, &store.IdempotencyKeyDeleteExpiredParams{APIKeyID: "k1", KeyHash: "h1", At: at}); err != nil {
		t.Fatal(err)
	}
	if _, err := get("k1", "h1"); err != nil {
		t.Fatalf("a live key was dropped: %v", err)
	}
	if err := q.IdempotencyKeyDeleteExpired(ctx, &store.IdempotencyKeyDeleteExpiredParams{APIKeyID: "k1", KeyHash: "h2", At: at}); err != nil {
		t.Fatal(err)
	}
	if _, err := get("k1", "h2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired key kept: %v, want ErrNotFound", err)
	}

	if err := q.IdempotencyKeyDeleteAllExpired(ctx, at.Add(time.Hour-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := get("k2", "h1"); err != nil {
		t.Fatalf("sweep dropped a live key: %v", err)
	}
	if err := q.IdempotencyKeyDeleteAllExpired(ctx, at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, k := range [][2]string{{"k1", "h1"}, {"k2", "h1"}} {
		if _, err := get(k[0], k[1]); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("sweep kept expired key %v: %v", k, err)
		}
	}
}
