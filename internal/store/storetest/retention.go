package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseRetention(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	cutoff := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	old, recent := cutoff.Add(-time.Hour), cutoff.Add(time.Hour)
	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := db.NewRaw(query, args...).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	count := func(table string) int {
		t.Helper()
		var n int
		if err := db.NewRaw(`SELECT COUNT(*) FROM `+table).Scan(ctx, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	purge := func(table store.RetentionTable, limit int) int {
		t.Helper()
		n, err := q.RetentionDeleteBatch(ctx, &store.RetentionDeleteBatchParams{Table: table, Before: cutoff, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A composite key, in batches: 3 old rows go 2 then 1; the recent one stays.
	for i, at := range []time.Time{old, old, old, recent} {
		exec(`INSERT INTO inbox (consumer, message_id, processed_at) VALUES ('c', ?, ?)`, string(rune('a'+i)), at)
	}
	if n := purge(store.RetentionInbox, 2); n != 2 {
		t.Fatalf("first batch deleted %d, want 2", n)
	}
	if n := purge(store.RetentionInbox, 2); n != 1 {
		t.Fatalf("second batch deleted %d, want 1", n)
	}
	if n := count("inbox"); n != 1 {
		t.Fatalf("%d inbox rows left, want the recent one", n)
	}

	// The extra condition: a pending poison message stays however old.
	for i, state := range []string{"pending", "replayed", "discarded"} {
		exec(`INSERT INTO poison_messages (id, message_id, topic, handler, class, reason, payload, metadata, first_seen_at, last_seen_at, state, state_changed_at)
VALUES (?, ?, 't', 'h', 'permanent', 'r', 'p', '{}', ?, ?, ?, ?)`, state, string(rune('a'+i)), old, old, state, old)
	}
	if n := purge(store.RetentionPoisonMessages, 10); n != 2 {
		t.Fatalf("poison: deleted %d, want the replayed and the discarded", n)
	}
	var left string
	if err := db.NewRaw(`SELECT state FROM poison_messages`).Scan(ctx, &left); err != nil || left != "pending" {
		t.Fatalf("poison left: %q %v", left, err)
	}
	if name := store.RetentionPoisonMessages.Name(); name != "poison_messages" {
		t.Fatalf("name %q", name)
	}

	// Every table's statement runs on this backend.
	for _, table := range []store.RetentionTable{store.RetentionNotifications, store.RetentionReportMails, store.RetentionCronRuns,
		store.RetentionAuditLog, store.RetentionLoginAudit} {
		if n := purge(table, 10); n != 0 {
			t.Fatalf("%s: deleted %d from an empty table", table.Name(), n)
		}
	}

	exerciseSQLTopicPurge(t, db, q, cutoff)
}

// exerciseSQLTopicPurge runs the topic statements on a table pair shaped
// like sqlpubsub's (the "offset" and created_at of its messages, the
// consumer_group and offset_acked of its offsets).
func exerciseSQLTopicPurge(t *testing.T, db *bun.DB, q *store.Queries, cutoff time.Time) {
	ctx := context.Background()
	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := db.NewRaw(query, args...).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ts := "TIMESTAMP"
	if db.Dialect().Name() == dialect.PG {
		ts = "TIMESTAMPTZ"
	}
	if _, ok, err := q.SQLTopicMinAcked(ctx, "topic_offsets"); err != nil || ok {
		t.Fatalf("missing offsets table: %v %v, want not ok and no error", ok, err)
	}
	exec(`CREATE TABLE topic_messages ("offset" BIGINT PRIMARY KEY, created_at ` + ts + ` NOT NULL)`)
	exec(`CREATE TABLE topic_offsets (consumer_group TEXT PRIMARY KEY, offset_acked BIGINT)`)
	if _, ok, err := q.SQLTopicMinAcked(ctx, "topic_offsets"); err != nil || ok {
		t.Fatalf("no group: %v %v, want not ok", ok, err)
	}
	for i := 1; i <= 5; i++ {
		at := cutoff.Add(-time.Hour)
		if i == 5 {
			at = cutoff.Add(time.Hour)
		}
		exec(`INSERT INTO topic_messages ("offset", created_at) VALUES (?, ?)`, i, at)
	}
	exec(`INSERT INTO topic_offsets (consumer_group, offset_acked) VALUES ('fast', 4), ('slow-b', 2), ('slow-a', 2)`)

	acked, ok, err := q.SQLTopicMinAcked(ctx, "topic_offsets")
	if err != nil || !ok || acked != 2 {
		t.Fatalf("min acked: %d %v %v, want 2", acked, ok, err)
	}
	n, err := q.SQLTopicDeleteAckedBatch(ctx, &store.SQLTopicDeleteAckedBatchParams{MessagesTable: "topic_messages", Acked: acked, Before: cutoff, Limit: 1})
	if err != nil || n != 1 {
		t.Fatalf("first batch: %d %v", n, err)
	}
	var lowest int64
	if err := db.NewRaw(`SELECT MIN("offset") FROM topic_messages`).Scan(ctx, &lowest); err != nil || lowest != 2 {
		t.Fatalf("the batch deleted from the lowest offset: lowest left %d %v", lowest, err)
	}
	n, err = q.SQLTopicDeleteAckedBatch(ctx, &store.SQLTopicDeleteAckedBatchParams{MessagesTable: "topic_messages", Acked: acked, Before: cutoff, Limit: 10})
	if err != nil || n != 1 {
		t.Fatalf("second batch: %d %v, want offset 2 only", n, err)
	}
	waiting, err := q.SQLTopicCountHeldBack(ctx, &store.SQLTopicHeldBackParams{MessagesTable: "topic_messages", Acked: acked, Before: cutoff})
	if err != nil || waiting != 2 {
		t.Fatalf("held back: %d %v, want offsets 3 and 4 (5 is recent)", waiting, err)
	}
	groups, err := q.SQLTopicGroupsAt(ctx, &store.SQLTopicGroupsAtParams{OffsetsTable: "topic_offsets", Acked: acked})
	if err != nil || len(groups) != 2 || groups[0] != "slow-a" || groups[1] != "slow-b" {
		t.Fatalf("groups at %d: %v %v", acked, groups, err)
	}
}
