package delivery_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/delivery"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// A delivery left in sending by a dead consumer goes back to retry once
// the timeout has passed, and the scheduler (the scheduled-notifications
// job) publishes its next attempt; a fresh one is left alone.
func TestSweepStuck(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresSQL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, name)
			topic := env.Config.TopicSendNotification
			env.EnsureTopics(t, topic)
			ctx := context.Background()
			now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := env.DB.NewRaw(q, args...).Exec(ctx); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			exec(`INSERT INTO doctors (id, external_user_id, name, profile_version, created_at, updated_at) VALUES ('d1', 'x1', 'Dr', ?, ?, ?)`, now, now, now)
			exec(`INSERT INTO notifications (id, doctor_id, seq, dedup_key, type, category, priority, title, body, data, source_event_id, send_at, created_at)
VALUES ('n1', 'd1', 1, 'k1', 'result_available', 'results', 'normal', '', '', '{}', 's', ?, ?)`, now, now)
			exec(`INSERT INTO deliveries (id, notification_id, channel, status, send_at, created_at, updated_at, attempt) VALUES
('stuck', 'n1', 'email', 'sending', ?, ?, ?, 2), ('fresh', 'n1', 'sms', 'sending', ?, ?, ?, 1)`,
				now, now, now.Add(-20*time.Minute), now, now, now.Add(-time.Minute))

			n, err := delivery.SweepStuck(ctx, env.DB, 15*time.Minute, now)
			if err != nil || n != 1 {
				t.Fatalf("swept %d, %v", n, err)
			}
			var status string
			if err := env.DB.NewRaw(`SELECT status FROM deliveries WHERE id = 'stuck'`).Scan(ctx, &status); err != nil || status != "queued" {
				t.Fatalf("stuck delivery is %q, %v", status, err)
			}
			if err := env.DB.NewRaw(`SELECT status FROM deliveries WHERE id = 'fresh'`).Scan(ctx, &status); err != nil || status != "sending" {
				t.Fatalf("fresh delivery is %q, %v", status, err)
			}

			sched := delivery.NewScheduler(env.DB, env.Outbox, topic, func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if n, err := sched.Tick(ctx); err != nil || n != 1 {
				t.Fatalf("scheduler published %d, %v", n, err)
			}
			var payload []byte
			if err := env.DB.NewRaw(`SELECT payload FROM "watermill_send-notification" WHERE uuid = 'stuck#3'`).Scan(ctx, &payload); err != nil {
				t.Fatalf("attempt 3 of the stuck delivery not published: %v", err)
			}
			cmd, err := events.DecodeSendNotification(payload)
			if err != nil || cmd.Attempt != 3 || cmd.DeliveryID != "stuck" {
				t.Fatalf("command %+v %v", cmd, err)
			}
		})
	}
}
