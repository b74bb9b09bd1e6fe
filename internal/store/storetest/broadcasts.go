package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/uptrace/bun/dialect"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseBroadcasts(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

	if _, err := q.BroadcastGet(ctx, "nothing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown: %v, want ErrNotFound", err)
	}
	if _, err := q.BroadcastGetNextForUpdate(ctx, []string{"pending", "running"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("next with none: %v, want ErrNotFound", err)
	}
	newer := &store.Broadcast{ID: "b2", Category: "announcements", Title: "t2", Body: "body", Kind: "clinic",
		Value: json.RawMessage(`"north"`), State: "pending", APIKeyID: "k1", CreatedAt: t0.Add(time.Minute)}
	older := &store.Broadcast{ID: "b1", Category: "orders", Title: "t1", Body: "body", Kind: "doctors",
		Value: json.RawMessage(`["d1","ext-d3"]`), State: "pending", APIKeyID: "k1", CreatedAt: t0}
	done := &store.Broadcast{ID: "b0", Category: "orders", Title: "t0", Body: "body", Kind: "all",
		Value: json.RawMessage(`""`), State: "done", CreatedAt: t0.Add(-time.Hour)}
	for _, b := range []*store.Broadcast{newer, older, done} {
		if err := q.BroadcastInsert(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := q.BroadcastGet(ctx, "b1")
	if err != nil {
		t.Fatal(err)
	}
	var doctors []string
	if err := json.Unmarshal(got.Value, &doctors); err != nil || len(doctors) != 2 || doctors[1] != "ext-d3" {
		t.Fatalf("audience value %s: %v %v", got.Value, doctors, err)
	}
	if got.Category != "orders" || got.Kind != "doctors" || got.State != "pending" || got.APIKeyID != "k1" ||
		!got.CreatedAt.Equal(t0) || got.StartedAt != nil || got.CompletedAt != nil || got.Checkpoint != "" {
		t.Fatalf("get: %+v", got)
	}

	next, err := q.BroadcastGetNextForUpdate(ctx, []string{"pending", "running"})
	if err != nil || next.ID != "b1" {
		t.Fatalf("next: %+v %v, want the oldest unfinished, b1", next, err)
	}
	if db.Dialect().Name() == dialect.PG {
		// One fan-out holds b1: another takes the next broadcast.
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := store.NewQueries(tx).BroadcastGetNextForUpdate(ctx, []string{"pending"}); err != nil || b.ID != "b1" {
			t.Fatalf("locked next: %+v %v", b, err)
		}
		if b, err := q.BroadcastGetNextForUpdate(ctx, []string{"pending"}); err != nil || b.ID != "b2" {
			t.Fatalf("next past a locked one: %+v %v, want b2", b, err)
		}
		_ = tx.Rollback()
	}

	// The audience: active doctors only, by clinic, specialty or list.
	for _, id := range []string{"d1", "d2", "d3", "d4", "d5"} {
		jobsDoctor(t, db, id, t0)
	}
	jobsExec(t, db, `UPDATE doctors SET clinic = 'north', specialty = 'cardiology' WHERE id IN ('d1', 'd2', 'd5')`)
	jobsExec(t, db, `UPDATE doctors SET time_zone = 'Asia/Bangkok', email = 'd2@example.org' WHERE id = 'd2'`)
	jobsExec(t, db, `UPDATE doctors SET active = ? WHERE id = 'd5'`, false)
	north, cardiology := "north", "cardiology"
	for name, c := range map[string]struct {
		audience store.BroadcastAudience
		want     []string
	}{
		"all":       {store.BroadcastAudience{}, []string{"d1", "d2", "d3", "d4"}},
		"clinic":    {store.BroadcastAudience{Clinic: &north}, []string{"d1", "d2"}},
		"specialty": {store.BroadcastAudience{Specialty: &cardiology}, []string{"d1", "d2"}},
		"doctors":   {store.BroadcastAudience{Doctors: []string{"d1", "ext-d3", "d5", "nobody"}}, []string{"d1", "d3"}},
	} {
		n, err := q.BroadcastCountAudience(ctx, &c.audience)
		if err != nil || n != len(c.want) {
			t.Fatalf("%s: count %d %v, want %d", name, n, err, len(c.want))
		}
		var ids []string
		after := ""
		for {
			chunk, err := q.BroadcastListAudience(ctx, &store.BroadcastListAudienceParams{Audience: c.audience, After: after, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(chunk) == 0 {
				break
			}
			ids = append(ids, chunk[0].ID)
			after = chunk[0].ID
		}
		if len(ids) != len(c.want) {
			t.Fatalf("%s: chunks %v, want %v", name, ids, c.want)
		}
		for i := range ids {
			if ids[i] != c.want[i] {
				t.Fatalf("%s: chunks %v, want %v", name, ids, c.want)
			}
		}
	}
	chunk, err := q.BroadcastListAudience(ctx, &store.BroadcastListAudienceParams{Audience: store.BroadcastAudience{Clinic: &north}, After: "d1", Limit: 10})
	if err != nil || len(chunk) != 1 {
		t.Fatalf("chunk after d1: %+v %v", chunk, err)
	}
	if d := chunk[0]; d.ID != "d2" || d.ExternalUserID != "ext-d2" || d.TimeZone != "Asia/Bangkok" || d.Email != "d2@example.org" ||
		d.Clinic != "north" || !d.Active || !d.CreatedAt.Equal(t0) || !d.ProfileVersion.Equal(t0) {
		t.Fatalf("recipient: %+v", d)
	}

	// The fan-out's progress on the row.
	if err := q.BroadcastStart(ctx, &store.BroadcastStartParams{ID: "b1", State: "running", Targeted: 2, At: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := q.BroadcastSetCheckpoint(ctx, &store.BroadcastSetCheckpointParams{ID: "b1", Checkpoint: "d1", Created: 1}); err != nil {
		t.Fatal(err)
	}
	if err := q.BroadcastFinish(ctx, &store.BroadcastFinishParams{ID: "b1", State: "done", Created: 1, At: t0.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got, err = q.BroadcastGet(ctx, "b1")
	if err != nil || got.State != "done" || got.Targeted != 2 || got.Created != 2 || got.Checkpoint != "d1" ||
		got.StartedAt == nil || !got.StartedAt.Equal(t0.Add(time.Hour)) || got.CompletedAt == nil || !got.CompletedAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("finished: %+v %v", got, err)
	}
	if next, err := q.BroadcastGetNextForUpdate(ctx, []string{"pending", "running"}); err != nil || next.ID != "b2" {
		t.Fatalf("next after b1 is done: %+v %v", next, err)
	}

	// Outcomes: delivered on a channel; failed with none left to try; still trying.
	src := "broadcast:b1"
	for _, n := range []struct {
		id       string
		statuses []string
	}{
		{"n-ok", []string{"failed", "delivered"}},
		{"n-failed", []string{"failed", "undeliverable"}},
		{"n-open", []string{"failed", "queued"}},
		{"n-read", []string{"read"}},
	} {
		jobsInsertNotification(t, db, jobsNotification{ID: n.id, DoctorID: "d1", Category: "announcements", SourceEventID: src, CreatedAt: t0})
		for i, status := range n.statuses {
			jobsDelivery(t, db, n.id, []string{"push", "email"}[i], status, t0)
		}
	}
	jobsInsertNotification(t, db, jobsNotification{ID: "other", DoctorID: "d1", Category: "announcements", SourceEventID: "broadcast:b2", CreatedAt: t0})
	jobsDelivery(t, db, "other", "push", "delivered", t0)
	o, err := q.BroadcastCountOutcomes(ctx, src)
	if err != nil || o.Delivered != 2 || o.Failed != 1 {
		t.Fatalf("outcomes: %+v %v, want 2 delivered, 1 failed", o, err)
	}
	if o, err := q.BroadcastCountOutcomes(ctx, "broadcast:none"); err != nil || o.Delivered != 0 || o.Failed != 0 {
		t.Fatalf("outcomes of none: %+v %v", o, err)
	}
}
