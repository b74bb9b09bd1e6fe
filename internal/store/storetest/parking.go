package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseParking(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	seedDoctor(t, db, "d1", "x1", "", at)

	park := func(b *store.Batch, key, ext string, received time.Time) {
		if err := b.ParkingInsert(ctx, &store.ParkingInsertParams{DedupKey: key, ExternalID: ext, Intent: `{"key":"` + key + `"}`,
			SourceEventID: "ev", ReceivedAt: received}); err != nil {
			t.Fatal(err)
		}
	}
	inTx(t, db, func(q *store.Queries, b *store.Batch) {
		if err := q.ParkingLock(ctx, []string{"x1", "x9", "x1"}); err != nil {
			t.Fatal(err)
		}
		park(b, "checkup/c1/result/1|ext:x1", "x1", at.Add(time.Minute))
		park(b, "checkup/c2/completed|ext:x1", "x1", at)
		park(b, "checkup/c2/completed|ext:x1", "x1", at.Add(time.Hour)) // already parked: kept as it was
		park(b, "checkup/c1/result/1|ext:x9", "x9", at)
		park(b, "order/o1/shipped/1|ext:x9", "x9", at.Add(time.Hour))
	})

	parked, err := q.ParkingListForDoctor(ctx, "x1")
	if err != nil || len(parked) != 2 || parked[0].DedupKey != "checkup/c2/completed|ext:x1" || parked[1].DedupKey != "checkup/c1/result/1|ext:x1" {
		t.Fatalf("parked for x1 (oldest first): %+v %v", parked, err)
	}
	var intent map[string]string
	if err := json.Unmarshal([]byte(parked[1].Intent), &intent); err != nil || intent["key"] != "checkup/c1/result/1|ext:x1" {
		t.Fatalf("intent %q: %v", parked[1].Intent, err)
	}
	if ready, err := q.ParkingListReleasable(ctx); err != nil || len(ready) != 1 || ready[0] != "x1" {
		t.Fatalf("releasable: %v %v, want x1 (registered)", ready, err)
	}
	cutoff := at.Add(30 * time.Minute)
	if c, err := q.ParkingCount(ctx, cutoff); err != nil || c.Waiting != 4 || c.Overdue != 3 {
		t.Fatalf("count: %+v %v", c, err)
	}
	overdue, err := q.ParkingListOverdue(ctx, cutoff)
	if err != nil || len(overdue) != 2 || overdue[0].ExternalID != "x1" || overdue[0].N != 2 || overdue[1].ExternalID != "x9" || overdue[1].N != 1 {
		t.Fatalf("overdue: %+v %v", overdue, err)
	}
	if err := q.ParkingMarkReported(ctx, &store.ParkingMarkReportedParams{Before: cutoff, At: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if overdue, err := q.ParkingListOverdue(ctx, at.Add(2*time.Hour)); err != nil || len(overdue) != 1 || overdue[0].ExternalID != "x9" || overdue[0].N != 1 {
		t.Fatalf("overdue after reporting: %+v %v, want only the order intent not reported yet", overdue, err)
	}
	if c, err := q.ParkingCount(ctx, cutoff); err != nil || c.Overdue != 3 {
		t.Fatalf("reported intents still count as overdue: %+v %v", c, err)
	}

	inTx(t, db, func(q *store.Queries, b *store.Batch) {
		if err := b.ParkingDelete(ctx, "checkup/c2/completed|ext:x1"); err != nil {
			t.Fatal(err)
		}
		if err := b.ParkingDeleteForCheckup(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
	})
	if c, err := q.ParkingCount(ctx, cutoff); err != nil || c.Waiting != 1 {
		t.Fatalf("left after deleting: %+v %v", c, err)
	}
	if parked, err := q.ParkingListForDoctor(ctx, "x9"); err != nil || len(parked) != 1 || parked[0].DedupKey != "order/o1/shipped/1|ext:x9" {
		t.Fatalf("left for x9: %+v %v", parked, err)
	}

	// On PostgreSQL the parking lock of a doctor is held until commit: a
	// second transaction's lock of the same doctor waits for it.
	if db.Dialect().Name().String() != "pg" {
		return
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := store.NewQueries(tx).ParkingLock(ctx, []string{"x1"}); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		waited <- db.RunInTx(ctx, nil, func(ctx context.Context, tx2 bun.Tx) error {
			return store.NewQueries(tx2).ParkingLock(ctx, []string{"x2", "x1"})
		})
	}()
	select {
	case err := <-waited:
		t.Fatalf("second lock taken while the first was held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
}
