package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseDevices(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for _, ext := range []string{"a", "b"} {
		if err := q.DoctorUpsertProfile(ctx, doctorProfile(ext, at)); err != nil {
			t.Fatal(err)
		}
	}
	const tokA, tokB = "token-a-0123456789", "token-b-0123456789"

	if list, err := q.DeviceListForDoctor(ctx, "id-a"); err != nil || len(list) != 0 {
		t.Fatalf("list before any: %+v %v", list, err)
	}
	if _, err := q.DeviceGet(ctx, &store.DeviceGetParams{Token: tokA, DoctorID: "id-a"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown: %v, want ErrNotFound", err)
	}
	for i, tok := range []string{tokB, tokA} {
		created, err := q.DeviceInsert(ctx, &store.DeviceInsertParams{Token: tok, DoctorID: "id-a", Platform: "android", Now: at.Add(time.Duration(i) * time.Minute)})
		if err != nil || !created {
			t.Fatalf("insert %s: %v %v", tok, created, err)
		}
	}
	// A token already registered, to anyone, is not inserted again.
	if created, err := q.DeviceInsert(ctx, &store.DeviceInsertParams{Token: tokA, DoctorID: "id-b", Platform: "ios", Now: at}); err != nil || created {
		t.Fatalf("insert a taken token: %v %v, want false", created, err)
	}
	list, err := q.DeviceListForDoctor(ctx, "id-a")
	if err != nil || len(list) != 2 || list[0].Token != tokB || list[1].Token != tokA {
		t.Fatalf("list: %+v %v, want b then a (by registration)", list, err)
	}
	if list[0].Platform != "android" || list[0].DisabledAt != nil || list[0].DisabledReason != "" ||
		!list[0].CreatedAt.Equal(at) || !list[0].UpdatedAt.Equal(at) {
		t.Fatalf("listed device: %+v", list[0])
	}

	// Re-registering enables a disabled token, for its doctor only.
	if _, err := db.NewRaw(`UPDATE devices SET disabled_at = ?, disabled_reason = 'UNREGISTERED' WHERE token = ?`, at, tokA).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if d, err := q.DeviceGet(ctx, &store.DeviceGetParams{Token: tokA, DoctorID: "id-a"}); err != nil || d.DisabledAt == nil || d.DisabledReason != "UNREGISTERED" {
		t.Fatalf("disabled device: %+v %v", d, err)
	}
	if theirs, err := q.DeviceReregister(ctx, &store.DeviceReregisterParams{Token: tokA, DoctorID: "id-b", Platform: "ios", Now: at}); err != nil || theirs {
		t.Fatalf("re-register another doctor's token: %v %v, want false", theirs, err)
	}
	later := at.Add(time.Hour)
	if theirs, err := q.DeviceReregister(ctx, &store.DeviceReregisterParams{Token: tokA, DoctorID: "id-a", Platform: "ios", Now: later}); err != nil || !theirs {
		t.Fatalf("re-register: %v %v", theirs, err)
	}
	d, err := q.DeviceGet(ctx, &store.DeviceGetParams{Token: tokA, DoctorID: "id-a"})
	if err != nil || d.Platform != "ios" || d.DisabledAt != nil || d.DisabledReason != "" || !d.UpdatedAt.Equal(later) || d.CreatedAt.Equal(later) {
		t.Fatalf("re-registered device: %+v %v", d, err)
	}
	if _, err := q.DeviceGet(ctx, &store.DeviceGetParams{Token: tokA, DoctorID: "id-b"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get another doctor's device: %v, want ErrNotFound", err)
	}

	if removed, err := q.DeviceDelete(ctx, &store.DeviceDeleteParams{Token: tokA, DoctorID: "id-b"}); err != nil || removed {
		t.Fatalf("delete another doctor's device: %v %v, want false", removed, err)
	}
	if removed, err := q.DeviceDelete(ctx, &store.DeviceDeleteParams{Token: tokA, DoctorID: "id-a"}); err != nil || !removed {
		t.Fatalf("delete: %v %v", removed, err)
	}
	if list, err := q.DeviceListForDoctor(ctx, "id-a"); err != nil || len(list) != 1 || list[0].Token != tokB {
		t.Fatalf("list after delete: %+v %v", list, err)
	}
}
