package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseCronRuns(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	slot := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	at := slot.Add(3 * time.Second)

	claim := func(job, instance string, slot time.Time) bool {
		t.Helper()
		ok, err := q.CronRunClaim(ctx, &store.CronRunClaimParams{Job: job, Slot: slot, Instance: instance, At: at})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !claim("digests", "a", slot) {
		t.Fatal("the first claim of a slot was refused")
	}
	if claim("digests", "b", slot) {
		t.Fatal("a slot was claimed twice: it would run on two replicas")
	}
	if !claim("digests", "b", slot.Add(time.Hour)) || !claim("retention", "b", slot) {
		t.Fatal("another slot, or another job's slot, was refused")
	}

	finished := at.Add(time.Minute)
	if err := q.CronRunFinish(ctx, &store.CronRunFinishParams{Job: "digests", Slot: slot, Status: "failed", Error: "boom", At: finished}); err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Job        string     `bun:"job"`
		Instance   string     `bun:"instance"`
		Status     string     `bun:"status"`
		Error      string     `bun:"error"`
		StartedAt  time.Time  `bun:"started_at"`
		FinishedAt *time.Time `bun:"finished_at"`
	}
	if err := db.NewRaw(`SELECT job, instance, status, error, started_at, finished_at FROM cron_runs ORDER BY job, slot`).Scan(ctx, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	first := rows[0]
	if first.Job != "digests" || first.Instance != "a" || first.Status != "failed" || first.Error != "boom" ||
		!first.StartedAt.Equal(at) || first.FinishedAt == nil || !first.FinishedAt.Equal(finished) {
		t.Fatalf("finished run: %+v", first)
	}
	if second := rows[1]; second.Status != "running" || second.Error != "" || second.FinishedAt != nil || second.Instance != "b" {
		t.Fatalf("running run: %+v", second)
	}
}
