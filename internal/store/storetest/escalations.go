package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/uptrace/bun/dialect"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseEscalations(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sla, lookback := 30*time.Minute, 7*24*time.Hour
	for _, id := range []string{"d1", "d2"} {
		jobsDoctor(t, db, id, now.Add(-30*24*time.Hour))
	}
	breach := now.Add(-time.Hour)
	for _, n := range []jobsNotification{
		{ID: "late-2", Priority: "critical", CreatedAt: breach},
		{ID: "late-1", Priority: "critical", CreatedAt: breach.Add(-time.Minute)},
		{ID: "acked", Priority: "critical", CreatedAt: breach, AcknowledgedAt: jobsPtr(now)},
		{ID: "normal", Priority: "normal", CreatedAt: breach},
		{ID: "copy", Priority: "critical", CreatedAt: breach, OnBehalfOf: jobsPtr("d2")},
		{ID: "recent", Priority: "critical", CreatedAt: now.Add(-time.Minute)},
		{ID: "ancient", Priority: "critical", CreatedAt: now.Add(-lookback - time.Hour)},
		{ID: "withdrawn", Priority: "critical", CreatedAt: breach},
		{ID: "laddered", Priority: "critical", CreatedAt: breach},
	} {
		n.DoctorID, n.Category = "d1", "critical_results"
		jobsInsertNotification(t, db, n)
	}
	jobsExec(t, db, `UPDATE notifications SET state = 'withdrawn' WHERE id = 'withdrawn'`)
	if err := q.EscalationStart(ctx, &store.EscalationStartParams{NotificationID: "laddered", State: "active", NextAt: now.Add(time.Hour), At: now}); err != nil {
		t.Fatal(err)
	}

	breaches, err := q.EscalationListBreaches(ctx, &store.EscalationListBreachesParams{
		Priority: "critical", State: "active", CreatedBefore: now.Add(-sla), CreatedAfter: now.Add(-lookback)})
	if err != nil {
		t.Fatal(err)
	}
	if len(breaches) != 2 || breaches[0].ID != "late-1" || breaches[1].ID != "late-2" || !breaches[1].CreatedAt.Equal(breach) {
		t.Fatalf("breaches: %+v, want late-1 then late-2", breaches)
	}

	for _, b := range breaches {
		if err := q.EscalationStart(ctx, &store.EscalationStartParams{NotificationID: b.ID, State: "active", NextAt: b.CreatedAt.Add(sla), At: now}); err != nil {
			t.Fatal(err)
		}
	}
	// A second start keeps the ladder as it is.
	if err := q.EscalationStart(ctx, &store.EscalationStartParams{NotificationID: "late-1", State: "stopped", NextAt: now, At: now}); err != nil {
		t.Fatal(err)
	}
	due, err := q.EscalationListDue(ctx, &store.EscalationListDueParams{State: "active", Now: now, Limit: 10})
	if err != nil || !slices.Equal(due, []string{"late-1", "late-2"}) {
		t.Fatalf("due: %v %v, want late-1, late-2 (laddered is not due)", due, err)
	}
	if due, err := q.EscalationListDue(ctx, &store.EscalationListDueParams{State: "active", Now: now, Limit: 1}); err != nil || !slices.Equal(due, []string{"late-1"}) {
		t.Fatalf("due, limit 1: %v %v", due, err)
	}

	if _, err := q.EscalationGetForUpdate(ctx, "normal"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get a ladder that does not exist: %v, want ErrNotFound", err)
	}
	e, err := q.EscalationGetForUpdate(ctx, "late-1")
	if err != nil || e.Level != 0 || e.State != "active" || !e.NextAt.Equal(breach.Add(-time.Minute).Add(sla)) {
		t.Fatalf("ladder: %+v %v", e, err)
	}
	if err := q.EscalationAdvance(ctx, &store.EscalationAdvanceParams{NotificationID: "late-1", Level: 1, NextAt: now.Add(sla), At: now}); err != nil {
		t.Fatal(err)
	}
	if e, err := q.EscalationGetForUpdate(ctx, "late-1"); err != nil || e.Level != 1 || !e.NextAt.Equal(now.Add(sla)) {
		t.Fatalf("advanced ladder: %+v %v", e, err)
	}
	if err := q.EscalationSetState(ctx, &store.EscalationSetStateParams{NotificationID: "late-2", State: "exhausted", At: now}); err != nil {
		t.Fatal(err)
	}
	if e, err := q.EscalationGetForUpdate(ctx, "late-2"); err != nil || e.State != "exhausted" || e.Level != 0 {
		t.Fatalf("exhausted ladder: %+v %v", e, err)
	}
	if db.Dialect().Name() == dialect.PG {
		// A ladder another transaction holds is skipped, not waited for.
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		if _, err := store.NewQueries(tx).EscalationGetForUpdate(ctx, "late-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := q.EscalationGetForUpdate(ctx, "late-1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a locked ladder: %v, want ErrNotFound", err)
		}
		_ = tx.Rollback()
	}

	// Acknowledged copies: the prefix is the ladder's copy key with its
	// separator, so late-10's copies are not late-1's.
	jobsDoctor(t, db, "d3", now)
	for _, c := range []jobsNotification{
		{ID: "c1", DedupKey: "escalation/late-1|d2", AcknowledgedAt: jobsPtr(now)},
		{ID: "c2", DedupKey: "escalation/late-2|d2"},
		{ID: "c3", DedupKey: "escalation/late-10|d2", AcknowledgedAt: jobsPtr(now)},
	} {
		c.DoctorID, c.Category, c.CreatedAt = "d3", "critical_results", now
		jobsInsertNotification(t, db, c)
	}
	for id, want := range map[string]int{"late-1": 1, "late-2": 0} {
		if k, err := q.EscalationCountAcknowledgedCopies(ctx, "escalation/"+id+"|"); err != nil || k != want {
			t.Fatalf("acknowledged copies of %s: %d %v, want %d", id, k, err, want)
		}
	}

	jobsDelivery(t, db, "late-1", "push", "failed", now)
	jobsDelivery(t, db, "late-1", "email", "sent", now)
	tried, err := q.EscalationListTriedChannels(ctx, "late-1")
	slices.Sort(tried)
	if err != nil || !slices.Equal(tried, []string{"email", "push"}) {
		t.Fatalf("tried channels: %v %v", tried, err)
	}
	if tried, err := q.EscalationListTriedChannels(ctx, "late-2"); err != nil || len(tried) != 0 {
		t.Fatalf("tried channels of a notification without deliveries: %v %v", tried, err)
	}

	steps := []store.EscalationStep{
		{NotificationID: "late-1", Level: 2, Kind: "covering", DoctorID: "d2", EscalatedNotificationID: "c1", At: now.Add(sla)},
		{NotificationID: "late-1", Level: 1, Kind: "channel", Channel: "sms", DoctorID: "d1", At: now},
	}
	for i := range steps {
		if err := q.EscalationStepInsert(ctx, &steps[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.EscalationStepInsert(ctx, &steps[0]); err == nil {
		t.Fatal("a second step at the same level was recorded")
	}
	kinds, err := q.EscalationStepListKinds(ctx, "late-1")
	slices.Sort(kinds)
	if err != nil || !slices.Equal(kinds, []string{"channel", "covering"}) {
		t.Fatalf("step kinds: %v %v", kinds, err)
	}
	got, err := q.EscalationStepList(ctx, "late-1")
	if err != nil || len(got) != 2 {
		t.Fatalf("steps: %+v %v", got, err)
	}
	if s := got[0]; s.Level != 1 || s.Kind != "channel" || s.Channel != "sms" || s.DoctorID != "d1" ||
		s.EscalatedNotificationID != "" || !s.At.Equal(now) {
		t.Fatalf("first step: %+v, want %+v", s, steps[1])
	}
	if s := got[1]; s.NotificationID != "late-1" || s.Level != 2 || s.Kind != "covering" || s.DoctorID != "d2" ||
		s.EscalatedNotificationID != "c1" || s.Channel != "" || !s.At.Equal(now.Add(sla)) {
		t.Fatalf("second step: %+v", s)
	}
	if none, err := q.EscalationStepList(ctx, "late-2"); err != nil || len(none) != 0 {
		t.Fatalf("steps of a ladder without any: %+v %v", none, err)
	}
}
