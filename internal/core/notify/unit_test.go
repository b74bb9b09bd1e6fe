package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// Notifications added to one unit take their doctors' sequence numbers in
// the order they were added, whether each is taken at once (SQLite) or in
// the batch sent at the flush (PostgreSQL), and the next unit carries on.
func TestUnitSequencesInAddOrder(t *testing.T) {
	testenv.Each(t, func(t *testing.T, env *testenv.Env) {
		env.EnsureTopics(t, env.Config.TopicSendNotification)
		ctx := context.Background()
		now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
		insertDoctor(t, env.DB, "doc-a", 5, now)
		insertDoctor(t, env.DB, "doc-b", 0, now)
		n := notify.New(env.Outbox, env.Config.TopicSendNotification, "https://portal.example", func() time.Time { return now })
		intent := func(key string, version int) notify.Intent {
			return notify.Intent{Key: key, SourceEventID: "ev-" + key, Type: templates.TypeResultAvailable,
				Category: domain.CategoryResults, Priority: domain.PriorityNormal, CheckupID: "CHK-" + key,
				ResultVersion: version, Detail: templates.Data{PatientName: "Synthetic Patient"}}
		}
		err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			u := notify.NewUnit(tx, store.NewBatch(tx))
			for _, add := range []struct {
				in      notify.Intent
				doctors []string
			}{
				{intent("k1", 1), []string{"ext-doc-a", "ext-doc-b"}},
				{intent("k2", 0), []string{"ext-doc-a"}},
				{intent("k3", 2), []string{"ext-doc-b", "ext-doc-a"}},
			} {
				if _, err := n.Add(ctx, u, add.in, add.doctors); err != nil {
					return err
				}
			}
			return n.Flush(ctx, u)
		})
		if err != nil {
			t.Fatal(err)
		}
		err = env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := n.Notify(ctx, tx, intent("k4", 0), []string{"ext-doc-a"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}

		var rows []store.Notification
		if err := env.DB.NewSelect().Model(&rows).Order("doctor_id", "seq").Scan(ctx); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rows {
			got = append(got, r.DoctorID+"/"+r.SourceEventID)
			if r.Data["DoctorName"] != "Dr. "+r.DoctorID || r.Data["PatientName"] != "Synthetic Patient" {
				t.Errorf("%s: data %v", r.ID, r.Data)
			}
			if !r.SendAt.Equal(now) || !r.CreatedAt.Equal(now) || r.State != domain.StateActive || r.CheckupID == nil {
				t.Errorf("%s: send_at %s created_at %s state %s checkup %v", r.ID, r.SendAt, r.CreatedAt, r.State, r.CheckupID)
			}
			if wantVersion := map[string]int{"ev-k1": 1, "ev-k3": 2}[r.SourceEventID]; (r.ResultVersion == nil) != (wantVersion == 0) ||
				(r.ResultVersion != nil && *r.ResultVersion != wantVersion) {
				t.Errorf("%s: result_version %v, want %d", r.SourceEventID, r.ResultVersion, wantVersion)
			}
		}
		want := []string{"doc-a/ev-k1", "doc-a/ev-k2", "doc-a/ev-k3", "doc-a/ev-k4", "doc-b/ev-k1", "doc-b/ev-k3"}
		if len(got) != len(want) {
			t.Fatalf("notifications by doctor and seq: %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("notifications by doctor and seq: %v, want %v", got, want)
			}
		}
		wantSeq := []int64{6, 7, 8, 9, 1, 2}
		for i, r := range rows {
			if r.Seq != wantSeq[i] {
				t.Errorf("%s: seq %d, want %d", got[i], r.Seq, wantSeq[i])
			}
		}
		var counters []int64
		if err := env.DB.NewRaw("SELECT notification_seq FROM doctors ORDER BY id").Scan(ctx, &counters); err != nil {
			t.Fatal(err)
		}
		if len(counters) != 2 || counters[0] != 9 || counters[1] != 2 {
			t.Errorf("doctors' counters %v, want [9 2]", counters)
		}
		var deliveries int
		if err := env.DB.NewRaw("SELECT count(*) FROM deliveries").Scan(ctx, &deliveries); err != nil || deliveries != 12 {
			t.Errorf("deliveries = %d (%v), want 12 (in-app and email for each)", deliveries, err)
		}
	})
}
