package retention_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rfd-notify/rfd/internal/jobs/retention"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// Rows past their retention go, in batches; younger rows, report e-mails
// not sent yet, pending poison messages and topic rows a consumer group
// has not acknowledged stay.
func TestRetention(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresSQL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, name)
			ctx := context.Background()
			now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
			old, young := now.Add(-400*24*time.Hour), now.Add(-time.Hour)
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := env.DB.NewRaw(q, args...).Exec(ctx); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			exec(`INSERT INTO doctors (id, external_user_id, name, profile_version, created_at, updated_at) VALUES ('d1', 'x1', 'Dr', ?, ?, ?)`, old, old, old)
			for i, at := range []time.Time{old, old, old, young} {
				id := fmt.Sprintf("n%d", i)
				exec(`INSERT INTO notifications (id, doctor_id, seq, dedup_key, type, category, priority, title, body, data, source_event_id, send_at, created_at)
VALUES (?, 'd1', ?, ?, 't', 'results', 'normal', '', '', '{}', 's', ?, ?)`, id, i, id, at, at)
				exec(`INSERT INTO deliveries (id, notification_id, channel, status, send_at, created_at, updated_at) VALUES (?, ?, 'in_app', 'delivered', ?, ?, ?)`,
					"dl"+id, id, at, at, at)
				exec(`INSERT INTO inbox (consumer, message_id, processed_at) VALUES ('c', ?, ?)`, id, at)
				auditAt := young
				if at.Equal(old) {
					auditAt = old.Add(-6 * 365 * 24 * time.Hour)
				}
				exec(`INSERT INTO audit_log (occurred_at, actor_type, actor_id, action, object_type, outcome) VALUES (?, 'doctor', 'd1', 'read', 'x', 'success')`, auditAt)
			}
			exec(`INSERT INTO poison_messages (id, message_id, topic, handler, class, reason, payload, metadata, first_seen_at, last_seen_at, state, state_changed_at)
VALUES ('p1', 'm1', 't', 'h', 'permanent', 'r', '{}', '{}', ?, ?, 'discarded', ?), ('p2', 'm2', 't', 'h', 'permanent', 'r', '{}', '{}', ?, ?, 'pending', NULL)`,
				old, old, old, old, old)

			for _, rm := range []struct {
				id, status string
				sentAt     *time.Time
			}{{"rm-old-sent", "sent", &old}, {"rm-old-pending", "pending", nil}, {"rm-young-sent", "sent", &young}} {
				exec(`INSERT INTO report_mails (id, report, period_start, period_end, recipient, body, status, created_at, sent_at)
VALUES (?, 'timeliness', ?, ?, 'qa@hospital.example', 'report', ?, ?, ?)`, rm.id, old, old, rm.status, old, rm.sentAt)
			}

			// A topic whose only consumer group has acknowledged 3 messages,
			// then a 4th it has not read.
			const topic = "retention-topic"
			env.EnsureTopics(t, topic)
			for i := range 3 {
				if err := env.Transport.Publisher().Publish(topic, message.NewMessage(fmt.Sprintf("m%d", i), []byte("{}"))); err != nil {
					t.Fatal(err)
				}
			}
			sub, err := env.PubSub.Subscriber("retention-group")
			if err != nil {
				t.Fatal(err)
			}
			sctx, cancel := context.WithCancel(ctx)
			ch, err := sub.Subscribe(sctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for m := range ch {
					m.Ack()
				}
			}()
			testenv.Eventually(t, 30*time.Second, "3 messages acknowledged", func() (bool, string) {
				var acked int
				err := env.DB.NewRaw(`SELECT COALESCE(MAX(offset_acked), 0) FROM "watermill_offsets_retention-topic"`).Scan(ctx, &acked)
				return err == nil && acked >= 3, fmt.Sprint(acked, err)
			})
			cancel()
			_ = sub.Close()
			if err := env.Transport.Publisher().Publish(topic, message.NewMessage("m3", []byte("{}"))); err != nil {
				t.Fatal(err)
			}

			r := retention.New(env.DB, env.PubSub, []string{topic, "no-such-topic"}, retention.Policy{
				Notifications: 365 * 24 * time.Hour, Inbox: 30 * 24 * time.Hour, Topics: -1, Poison: 90 * 24 * time.Hour,
				Audit: 6 * 365 * 24 * time.Hour, Batch: 2,
			}, func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)))
			got, err := r.Once(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got["notifications"] != 3 || got["inbox"] != 3 || got["audit_log"] != 3 || got["poison_messages"] != 1 || got["report_mails"] != 1 {
				t.Fatalf("deleted %v", got)
			}
			count := func(q string) int {
				var n int
				if err := env.DB.NewRaw(q).Scan(ctx, &n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			if n := count("SELECT COUNT(*) FROM deliveries"); n != 1 {
				t.Fatalf("deliveries left %d", n)
			}
			if n := count("SELECT COUNT(*) FROM poison_messages WHERE state = 'pending'"); n != 1 {
				t.Fatalf("pending poison left %d", n)
			}
			var mails []string
			if err := env.DB.NewRaw("SELECT id FROM report_mails ORDER BY id").Scan(ctx, &mails); err != nil || len(mails) != 2 ||
				mails[0] != "rm-old-pending" || mails[1] != "rm-young-sent" {
				t.Fatalf("report mails left %v (%v), want the pending and the young one", mails, err)
			}

			// Topic rows: with a retention of zero age (the clock far ahead),
			// only the acknowledged ones go, and the group the unread one
			// waits for is named.
			var logs bytes.Buffer
			r = retention.New(env.DB, env.PubSub, []string{topic}, retention.Policy{Topics: time.Nanosecond, Batch: 2},
				func() time.Time { return time.Now().Add(24 * time.Hour) }, slog.New(slog.NewTextHandler(&logs, nil)))
			got, err = r.Once(ctx)
			if err != nil || got["topic:"+topic] != 3 {
				t.Fatalf("topic rows deleted %v %v", got, err)
			}
			if n := count(`SELECT COUNT(*) FROM "watermill_retention-topic"`); n != 1 {
				t.Fatalf("topic rows left %d, want the unread one", n)
			}
			if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "topic=retention-topic groups=retention-group acknowledged_offset=3 rows_waiting=1") {
				t.Fatalf("log %q: want a warning naming the group that holds back the unread row", l)
			}
		})
	}
}
