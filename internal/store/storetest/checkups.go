package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
	"github.com/uptrace/bun"
)

func exerciseCheckups(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	scheduled := at.Add(24 * time.Hour)

	upsert := func(b *store.Batch, status string, lastEvent time.Time, scheduledAt, completedAt *time.Time) {
		if err := b.CheckupUpsert(ctx, &store.CheckupUpsertParams{ID: "c1", OrderID: "o1", PatientRef: "p1", Status: status,
			ScheduledAt: scheduledAt, CompletedAt: completedAt, LastEventAt: lastEvent, Now: lastEvent}); err != nil {
			t.Fatal(err)
		}
	}
	inTx(t, db, func(q *store.Queries, b *store.Batch) {
		upsert(b, "scheduled", at, &scheduled, nil)
		for _, ext := range []string{"x1", "x2", "x1"} {
			if err := b.CheckupAddDoctor(ctx, &store.CheckupAddDoctorParams{CheckupID: "c1", ExternalID: ext}); err != nil {
				t.Fatal(err)
			}
		}
	})
	completed := at.Add(time.Hour)
	inTx(t, db, func(q *store.Queries, b *store.Batch) { upsert(b, "completed", completed, nil, &completed) })
	// A late "scheduled" takes back neither the status nor the times.
	inTx(t, db, func(q *store.Queries, b *store.Batch) { upsert(b, "scheduled", at.Add(time.Minute), nil, nil) })
	if s := scalar[string](t, db, `SELECT status FROM checkups WHERE id = 'c1'`); s != "completed" {
		t.Fatalf("status %q, want completed", s)
	}
	if got := scalar[time.Time](t, db, `SELECT completed_at FROM checkups WHERE id = 'c1'`); !got.Equal(completed) {
		t.Fatalf("completed_at %v", got)
	}
	if got := scalar[time.Time](t, db, `SELECT scheduled_at FROM checkups WHERE id = 'c1'`); !got.Equal(scheduled) {
		t.Fatalf("scheduled_at %v", got)
	}
	if n := scalar[int](t, db, `SELECT COUNT(*) FROM checkup_doctors WHERE checkup_id = 'c1'`); n != 2 {
		t.Fatalf("%d referring doctors, want 2", n)
	}

	if _, err := q.CheckupGetLatestResult(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("latest of no result: %v, want ErrNotFound", err)
	}
	version := func(b *store.Batch, v int, status string) error {
		return b.CheckupResultVersionInsert(ctx, &store.CheckupResultVersionInsertParams{CheckupID: "c1", Version: v, Status: status,
			Critical: v == 2, Result: `{"version":1}`, EventID: "ev", OccurredAt: at, ReceivedAt: at})
	}
	inTx(t, db, func(q *store.Queries, b *store.Batch) {
		for v, status := range map[int]string{1: "final", 3: "cancelled", 2: "corrected"} {
			if err := version(b, v, status); err != nil {
				t.Fatal(err)
			}
		}
	})
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		b := store.NewBatch(tx)
		if err := version(b, 2, "final"); err != nil {
			return err
		}
		return b.Flush(ctx)
	})
	if err == nil {
		t.Fatal("a result version was stored twice")
	}
	latest, err := q.CheckupGetLatestResult(ctx, "c1")
	if err != nil || latest.Version != 3 || latest.Status != "cancelled" {
		t.Fatalf("latest: %+v %v", latest, err)
	}
	if c := scalar[bool](t, db, `SELECT critical FROM result_versions WHERE checkup_id = 'c1' AND version = 2`); !c {
		t.Fatal("critical not stored")
	}
	versions, err := q.CheckupListResultVersions(ctx, []string{"c1", "c2"})
	if err != nil {
		t.Fatal(err)
	}
	got := versions["c1"]
	slices.Sort(got)
	if !slices.Equal(got, []int{1, 2, 3}) || len(versions["c2"]) != 0 {
		t.Fatalf("versions: %v", versions)
	}
	// In a transaction too (the consumer's reads run in its batch's).
	inTx(t, db, func(q *store.Queries, b *store.Batch) {
		if v, err := q.CheckupListResultVersions(ctx, []string{"c1"}); err != nil || len(v["c1"]) != 3 {
			t.Fatalf("versions in a transaction: %v %v", v, err)
		}
	})
}
