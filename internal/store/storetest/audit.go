package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseAudit(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	entry := func(action, object string, detail map[string]any) *store.AuditEntry {
		return &store.AuditEntry{OccurredAt: at, ActorType: "doctor", ActorID: "id-a", Action: action, ObjectType: "notification",
			ObjectID: object, Outcome: "success", SourceIP: "192.0.2.1", UserAgent: "test", Detail: detail}
	}
	if err := q.AuditInsert(ctx, entry("notification.read", "n1", map[string]any{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	// Inside a transaction, and several at once.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.NewQueries(tx).AuditInsertMany(ctx, []*store.AuditEntry{entry("notification.list", "", nil), entry("notification.read", "n2", nil)}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	var got []store.AuditEntry
	if err := db.NewSelect().Model(&got).Order("id").Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("entries: %+v, want 3", got)
	}
	first := got[0]
	if first.Action != "notification.read" || first.ObjectID != "n1" || first.ActorType != "doctor" || first.ActorID != "id-a" ||
		first.Outcome != "success" || first.SourceIP != "192.0.2.1" || first.UserAgent != "test" || !first.OccurredAt.Equal(at) ||
		first.Detail["k"] != "v" {
		t.Fatalf("first entry: %+v", first)
	}
	if got[1].Action != "notification.list" || got[1].Detail != nil || got[2].ObjectID != "n2" || !(got[0].ID < got[1].ID && got[1].ID < got[2].ID) {
		t.Fatalf("entries in order: %+v", got)
	}
}
