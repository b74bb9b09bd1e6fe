package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// A transaction notifying several doctors locks their rows in id order,
// before any of its sequence updates: while doctor a is held elsewhere, a
// notification naming b then a has not yet locked b. (Locked in the order
// named, two such transactions naming them the other way round would
// deadlock, and PostgreSQL would break it only after deadlock_timeout.)
func TestNotifyLocksDoctorsInIDOrder(t *testing.T) {
	env := testenv.New(t, testenv.PostgresSQL)
	env.EnsureTopics(t, env.Config.TopicSendNotification)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	insertDoctor(t, env.DB, "doc-a", 0, now)
	insertDoctor(t, env.DB, "doc-b", 0, now)
	n := notify.New(env.Outbox, env.Config.TopicSendNotification, "https://portal.example", func() time.Time { return now })

	holder, err := env.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback() }()
	if _, err := holder.ExecContext(ctx, `SELECT id FROM doctors WHERE id = 'doc-a' FOR NO KEY UPDATE`); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		done <- env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := n.Notify(ctx, tx, notify.Intent{Key: "lock-order", SourceEventID: "e1", Type: templates.TypeResultAvailable,
				Category: domain.CategoryResults, Priority: domain.PriorityNormal}, []string{"ext-doc-b", "ext-doc-a"})
			return err
		})
	}()
	testenv.Eventually(t, 10*time.Second, "the notifying transaction waits for doc-a", func() (bool, string) {
		var waiting int
		err := env.DB.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		if err != nil {
			return false, err.Error()
		}
		return waiting == 1, "not waiting yet"
	})
	// doc-b must still be free: taking it does not wait.
	probe, err := env.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := probe.ExecContext(ctx, `SELECT id FROM doctors WHERE id = 'doc-b' FOR NO KEY UPDATE NOWAIT`); err != nil {
		t.Errorf("doc-b was locked before doc-a: %v", err)
	}
	_ = probe.Rollback()

	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("notify: %v", err)
	}
	var made int
	if err := env.DB.QueryRowContext(ctx, `SELECT count(*) FROM notifications WHERE source_event_id = 'e1'`).Scan(&made); err != nil || made != 2 {
		t.Fatalf("notifications = %d (%v), want 2", made, err)
	}
}

// insertDoctor stores doctor id (external user id "ext-"+id) whose
// notification counter stands at seq.
func insertDoctor(t *testing.T, db *bun.DB, id string, seq int64, now time.Time) {
	t.Helper()
	d := domain.Doctor{ID: id, ExternalUserID: "ext-" + id, Name: "Dr. " + id, Locale: "en", TimeZone: "UTC",
		Active: true, NotificationSeq: seq, ProfileVersion: now, CreatedAt: now, UpdatedAt: now}
	if _, err := db.NewInsert().Model(&d).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
}
