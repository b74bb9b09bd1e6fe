package escalation_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/jobs/escalation"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var t0 = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

type fixture struct {
	t        *testing.T
	env      *testenv.Env
	clock    *clock
	notifier *notify.Notifier
	reg      *prometheus.Registry
}

func (f *fixture) doctor(id, ext string, prefs *domain.Preferences) domain.Doctor {
	f.t.Helper()
	ctx := context.Background()
	d := domain.Doctor{ID: id, ExternalUserID: ext, Name: "Dr " + id, Locale: "en", TimeZone: "UTC", Active: true,
		ProfileVersion: t0, CreatedAt: t0, UpdatedAt: t0}
	if _, err := f.env.DB.NewInsert().Model(&d).Exec(ctx); err != nil {
		f.t.Fatal(err)
	}
	if prefs != nil {
		row := store.NewPreferencesRow(id, *prefs, t0)
		if _, err := f.env.DB.NewInsert().Model(&row).Exec(ctx); err != nil {
			f.t.Fatal(err)
		}
	}
	return d
}

func (f *fixture) critical(key, doctorExt string) string {
	f.t.Helper()
	var id string
	err := f.env.DB.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
		out, err := f.notifier.Notify(ctx, tx, notify.Intent{
			Key: key, SourceEventID: key, Type: templates.TypeCriticalResult, Category: domain.CategoryCriticalResults,
			Priority: domain.PriorityCritical, Detail: templates.Data{PatientName: "Synthetic Patient", TestName: "Potassium", ResultValue: "6.9"},
		}, []string{doctorExt})
		if err == nil && len(out.Created) > 0 {
			id = out.Created[0]
		}
		return err
	})
	if err != nil || id == "" {
		f.t.Fatalf("notify: %v", err)
	}
	return id
}

// tick runs the ladder at t with a fresh Ladder each time: its timers are
// in the database, so a restart between steps changes nothing.
func (f *fixture) tick(at time.Time) int {
	f.t.Helper()
	f.clock.set(at)
	l, err := escalation.New(f.env.DB, f.notifier, f.env.Outbox, escalation.Options{
		SLA: 30 * time.Minute, OnCallDoctor: "oncall-ext", SendTopic: f.env.Config.TopicSendNotification,
	}, f.clock.now, f.reg)
	if err != nil {
		f.t.Fatal(err)
	}
	n, err := l.Tick(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *fixture) steps(id string) []escalation.Step {
	f.t.Helper()
	s, err := escalation.Steps(context.Background(), store.NewQueries(f.env.DB), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) state(id string) string {
	f.t.Helper()
	var s string
	if err := f.env.DB.NewRaw("SELECT state FROM escalations WHERE notification_id = ?", id).Scan(context.Background(), &s); err != nil {
		f.t.Fatal(err)
	}
	return s
}

// The ladder end to end: next channel, covering doctor, on-call, then
// exhausted; and on another notification an acknowledgement stops it.
func TestLadder(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresSQL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, name)
			env.EnsureTopics(t, env.Config.TopicSendNotification)
			f := &fixture{t: t, env: env, clock: &clock{t: t0}, reg: prometheus.NewRegistry()}
			f.notifier = notify.New(env.Outbox, env.Config.TopicSendNotification, env.Config.PortalURL, f.clock.now)

			prefs := domain.DefaultPreferences()
			prefs.Channels[domain.CategoryCriticalResults] = []domain.Channel{domain.ChannelInApp}
			prefs.FallbackOrder = []domain.Channel{domain.ChannelSMS, domain.ChannelEmail}
			f.doctor("doc-a", "a-ext", &prefs)
			f.doctor("doc-b", "b-ext", nil)
			f.doctor("doc-oncall", "oncall-ext", nil)
			// An accepted cover: only those make covering copies.
			if _, err := env.DB.NewRaw(`INSERT INTO delegations (id, doctor_id, covering_doctor_id, starts_at, ends_at, created_at, status) VALUES ('del-1', 'doc-a', 'doc-b', ?, ?, ?, 'accepted')`,
				t0.Add(time.Minute), t0.Add(48*time.Hour), t0).Exec(context.Background()); err != nil {
				t.Fatal(err)
			}

			full := f.critical("checkup/CHK-1/result/1", "a-ext")
			acked := f.critical("checkup/CHK-2/result/1", "a-ext")

			if n := f.tick(t0.Add(29 * time.Minute)); n != 0 {
				t.Fatalf("steps before the SLA: %d", n)
			}
			if n := f.tick(t0.Add(30 * time.Minute)); n != 2 {
				t.Fatalf("steps at the SLA: %d, want one per notification", n)
			}
			s := f.steps(full)
			if len(s) != 1 || s[0].Kind != escalation.KindChannel || s[0].Channel != "sms" || s[0].Level != 1 || !s[0].At.Equal(t0.Add(30*time.Minute)) {
				t.Fatalf("level 1: %+v", s)
			}
			var smsDeliveries int
			if err := env.DB.NewRaw("SELECT COUNT(*) FROM deliveries WHERE notification_id = ? AND channel = 'sms'", full).Scan(context.Background(), &smsDeliveries); err != nil || smsDeliveries != 1 {
				t.Fatalf("sms deliveries = %d, %v", smsDeliveries, err)
			}
			if n := f.tick(t0.Add(45 * time.Minute)); n != 0 {
				t.Fatalf("steps between levels: %d", n)
			}

			// The doctor acknowledges the second one: its ladder stops.
			if _, err := env.DB.NewRaw("UPDATE notifications SET acknowledged_at = ? WHERE id = ?", t0.Add(50*time.Minute), acked).Exec(context.Background()); err != nil {
				t.Fatal(err)
			}

			if n := f.tick(t0.Add(60 * time.Minute)); n != 1 {
				t.Fatalf("steps at level 2: %d", n)
			}
			s = f.steps(full)
			if len(s) != 2 || s[1].Kind != escalation.KindCovering || s[1].DoctorID != "doc-b" || s[1].EscalatedNotificationID == "" {
				t.Fatalf("level 2: %+v", s)
			}
			var onBehalf string
			if err := env.DB.NewRaw("SELECT on_behalf_of FROM notifications WHERE id = ?", s[1].EscalatedNotificationID).Scan(context.Background(), &onBehalf); err != nil || onBehalf != "doc-a" {
				t.Fatalf("covering copy on behalf of %q, %v", onBehalf, err)
			}
			if got := f.state(acked); got != escalation.StateStopped {
				t.Fatalf("acknowledged ladder state %q", got)
			}
			if len(f.steps(acked)) != 1 {
				t.Fatalf("acknowledged ladder took more steps: %+v", f.steps(acked))
			}

			if n := f.tick(t0.Add(90 * time.Minute)); n != 1 {
				t.Fatalf("steps at level 3: %d", n)
			}
			s = f.steps(full)
			if len(s) != 3 || s[2].Kind != escalation.KindOnCall || s[2].DoctorID != "doc-oncall" {
				t.Fatalf("level 3: %+v", s)
			}
			if n := f.tick(t0.Add(120 * time.Minute)); n != 0 || f.state(full) != escalation.StateExhausted {
				t.Fatalf("after the last step: %d steps, state %s", n, f.state(full))
			}

			// The on-call doctor acknowledging their copy stops a ladder too.
			base := t0.Add(3 * time.Hour)
			f.clock.set(base)
			third := f.critical("checkup/CHK-3/result/1", "a-ext")
			f.tick(base.Add(30 * time.Minute))
			f.tick(base.Add(60 * time.Minute))
			s = f.steps(third)
			if len(s) != 2 {
				t.Fatalf("third ladder: %+v", s)
			}
			if _, err := env.DB.NewRaw("UPDATE notifications SET acknowledged_at = ? WHERE id = ?", base.Add(61*time.Minute), s[1].EscalatedNotificationID).Exec(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := f.tick(base.Add(90 * time.Minute)); n != 0 || f.state(third) != escalation.StateStopped {
				t.Fatalf("after the covering doctor acknowledged: %d steps, state %s", n, f.state(third))
			}

			mfs, err := f.reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, mf := range mfs {
				if mf.GetName() != "rfd_escalations_sla_breached_total" {
					continue
				}
				for _, m := range mf.GetMetric() {
					got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
				}
			}
			if got["1"] != 3 || got["2"] != 2 || got["3"] != 1 {
				t.Fatalf("breach counter by level = %v", got)
			}
		})
	}
}
