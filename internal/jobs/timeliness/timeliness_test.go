package timeliness_test

import (
	"context"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/jobs/timeliness"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

func TestReport(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresSQL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, name)
			ctx := context.Background()
			day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
			seed(t, env, day)
			rep, err := timeliness.Build(ctx, store.NewQueries(env.DB), day, day.Add(24*time.Hour), 30*time.Minute, day.Add(48*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Days) != 2 {
				t.Fatalf("days %+v", rep.Days)
			}
			d := rep.Days[0]
			if d.Critical != 3 || d.WithinSLA != 1 || len(d.Breaches) != 2 || d.Breaches[0].NotificationID != "n2" || d.Breaches[0].EscalationLevel != 1 ||
				d.Breaches[1].AcknowledgedAt != nil {
				t.Fatalf("day: %+v", d)
			}
			if d.EventToNotified.Count != 3 || d.EventToNotified.Median != 120 || d.NotifiedToDeliver.Max != 60 ||
				d.DeliveredToAck.Count != 2 || d.DeliveredToAck.Median != 9*60 || d.DeliveredToAck.Max != 49*60 {
				t.Fatalf("intervals: %+v %+v %+v", d.EventToNotified, d.NotifiedToDeliver, d.DeliveredToAck)
			}
			if rep.Days[1].Critical != 0 || rep.Days[1].ShareWithinSLA != 1 {
				t.Fatalf("empty day: %+v", rep.Days[1])
			}
			if _, err := timeliness.Build(ctx, store.NewQueries(env.DB), day, day.Add(-time.Hour*24), time.Minute, day); err == nil {
				t.Fatal("to before from accepted")
			}
		})
	}
}

// seed stores, on day, three critical results: acknowledged in 10 min,
// acknowledged in 50 min (a breach, escalated once), never acknowledged;
// and a covering copy the report leaves out.
func seed(t *testing.T, env *testenv.Env, day time.Time) {
	t.Helper()
	ctx := context.Background()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := env.DB.NewRaw(q, args...).Exec(ctx); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`INSERT INTO doctors (id, external_user_id, name, profile_version, created_at, updated_at) VALUES ('d1', 'x1', 'Dr', ?, ?, ?)`, day, day, day)
	exec(`INSERT INTO checkups (id, patient_ref, status, last_event_at, created_at, updated_at) VALUES ('c1', 'p', 'completed', ?, ?, ?)`, day, day, day)
	// Three critical results: acknowledged in 10 min, acknowledged
	// in 50 min (a breach, escalated once), never acknowledged.
	for i, tc := range []struct {
		id       string
		created  time.Time
		ack      time.Duration
		level    int
		onBehalf bool
	}{
		{"n1", day.Add(8 * time.Hour), 10 * time.Minute, 0, false},
		{"n2", day.Add(9 * time.Hour), 50 * time.Minute, 1, false},
		{"n3", day.Add(10 * time.Hour), 0, 0, false},
		{"n4", day.Add(10 * time.Hour), 0, 0, true},
	} {
		exec(`INSERT INTO result_versions (checkup_id, version, status, critical, result, event_id, occurred_at, received_at) VALUES ('c1', ?, 'final', TRUE, '{}', 'e', ?, ?)`,
			i+1, tc.created.Add(-2*time.Minute), tc.created)
		var ack *time.Time
		if tc.ack > 0 {
			a := tc.created.Add(tc.ack)
			ack = &a
		}
		var onBehalf *string
		if tc.onBehalf {
			s := "d0"
			onBehalf = &s
		}
		exec(`INSERT INTO notifications (id, doctor_id, seq, dedup_key, type, category, priority, title, body, data, checkup_id, result_version, source_event_id, send_at, created_at, acknowledged_at, on_behalf_of)
VALUES (?, 'd1', ?, ?, 'critical_result', 'critical_results', 'critical', '', '', '{}', 'c1', ?, 'e', ?, ?, ?, ?)`, tc.id, i, tc.id, i+1, tc.created, tc.created, ack, onBehalf)
		exec(`INSERT INTO deliveries (id, notification_id, channel, status, send_at, created_at, updated_at) VALUES (?, ?, 'in_app', 'delivered', ?, ?, ?)`,
			"d"+tc.id, tc.id, tc.created, tc.created, tc.created.Add(time.Minute))
		if tc.level > 0 {
			exec(`INSERT INTO escalation_steps (notification_id, level, kind, at) VALUES (?, 1, 'channel', ?)`, tc.id, tc.created.Add(30*time.Minute))
		}
	}
}
