package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseOrders(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

	create := func(status string) {
		if err := q.OrderCreate(ctx, &store.OrderCreateParams{ID: "o1", PatientRef: "p1", Status: status, LastEventAt: at, Now: at}); err != nil {
			t.Fatal(err)
		}
	}
	create("placed")
	create("shipped") // exists: unchanged
	if seq, err := q.OrderGetLastSeq(ctx, "o1"); err != nil || seq != 0 {
		t.Fatalf("last seq of a new order: %d %v", seq, err)
	}
	if s := scalar[string](t, db, `SELECT status FROM orders WHERE id = 'o1'`); s != "placed" {
		t.Fatalf("status %q", s)
	}
	if _, err := q.OrderGetLastSeq(ctx, "nope"); err == nil {
		t.Fatal("last seq of an unknown order")
	}

	if err := q.OrderUpdateState(ctx, &store.OrderUpdateStateParams{ID: "o1", Status: "shipped", Seq: 3, LastEventAt: at.Add(time.Hour), Now: at}); err != nil {
		t.Fatal(err)
	}
	if seq, err := q.OrderGetLastSeq(ctx, "o1"); err != nil || seq != 3 {
		t.Fatalf("last seq: %d %v", seq, err)
	}
	if s := scalar[string](t, db, `SELECT status FROM orders WHERE id = 'o1'`); s != "shipped" {
		t.Fatalf("status %q", s)
	}

	event := func(seq int64, applied bool) bool {
		t.Helper()
		ok, err := q.OrderEventInsert(ctx, &store.OrderEventInsertParams{OrderID: "o1", Seq: seq, Status: "shipped", Applied: applied,
			EventID: "ev", OccurredAt: at, ReceivedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !event(3, true) || !event(2, false) {
		t.Fatal("a new sequence number was not inserted")
	}
	if event(3, false) {
		t.Fatal("sequence 3 inserted twice")
	}
	if n := scalar[int](t, db, `SELECT COUNT(*) FROM order_events WHERE order_id = 'o1' AND applied`); n != 1 {
		t.Fatalf("%d applied events, want 1", n)
	}
	for _, ext := range []string{"x1", "x1", "x2"} {
		if err := q.OrderAddDoctor(ctx, &store.OrderAddDoctorParams{OrderID: "o1", ExternalID: ext}); err != nil {
			t.Fatal(err)
		}
	}
	if n := scalar[int](t, db, `SELECT COUNT(*) FROM order_doctors WHERE order_id = 'o1'`); n != 2 {
		t.Fatalf("%d referring doctors, want 2", n)
	}
}
