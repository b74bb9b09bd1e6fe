package digest_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/jobs/digest"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

func TestPeriodEnd(t *testing.T) {
	bkk, err := time.LoadLocation("Asia/Bangkok")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 0, 30, 0, 0, time.UTC) // 07:30 in Bangkok
	for _, tc := range []struct {
		setting string
		want    time.Time
		ok      bool
	}{
		{"hourly", time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), true},
		{"daily@07:00", time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), true},
		{"daily@08:00", time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC), true},
		{"off", time.Time{}, false},
		{"daily@25:00", time.Time{}, false},
	} {
		got, ok := digest.PeriodEnd(tc.setting, now, bkk)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("%s: %v %v, want %v %v", tc.setting, got, ok, tc.want, tc.ok)
		}
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// An hourly-digest doctor gets no email per result, and one digest email
// per hour that had any; critical results still email at once.
func TestHourlyDigest(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresSQL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, name)
			env.EnsureTopics(t, env.Config.TopicSendNotification)
			ctx := context.Background()
			t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			clk := &clock{t: t0}
			notifier := notify.New(env.Outbox, env.Config.TopicSendNotification, env.Config.PortalURL, clk.now)
			doc := domain.Doctor{ID: "d1", ExternalUserID: "x1", Name: "Dr", Locale: "en", TimeZone: "UTC", Active: true, ProfileVersion: t0, CreatedAt: t0, UpdatedAt: t0}
			if _, err := env.DB.NewInsert().Model(&doc).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			prefs := domain.DefaultPreferences()
			prefs.Digest = "hourly"
			row := store.NewPreferencesRow("d1", prefs, t0)
			if _, err := env.DB.NewInsert().Model(&row).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			notifyAt := func(at time.Time, key string, cat domain.Category, typ string, pr domain.Priority) {
				clk.set(at)
				err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					_, err := notifier.Notify(ctx, tx, notify.Intent{Key: key, SourceEventID: key, Type: typ, Category: cat, Priority: pr,
						Detail: templates.Data{PatientName: "Synthetic Patient"}}, []string{"x1"})
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			for i, m := range []int{5, 20, 40} {
				notifyAt(t0.Add(time.Duration(m)*time.Minute), "r"+string(rune('a'+i)), domain.CategoryResults, templates.TypeResultAvailable, domain.PriorityNormal)
			}
			notifyAt(t0.Add(45*time.Minute), "crit", domain.CategoryCriticalResults, templates.TypeCriticalResult, domain.PriorityCritical)
			emails := func() int {
				var n int
				if err := env.DB.NewRaw("SELECT COUNT(*) FROM deliveries WHERE channel = 'email'").Scan(ctx, &n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			if n := emails(); n != 1 {
				t.Fatalf("emails before the digest = %d, want only the critical one", n)
			}

			job := digest.New(env.DB, notifier, clk.now, slog.New(slog.NewTextHandler(io.Discard, nil)))
			clk.set(t0.Add(59 * time.Minute))
			if n, err := job.Once(ctx); err != nil || n != 0 {
				t.Fatalf("before the hour: %d %v", n, err)
			}
			clk.set(t0.Add(61 * time.Minute))
			if n, err := job.Once(ctx); err != nil || n != 1 {
				t.Fatalf("at the hour: %d %v", n, err)
			}
			if n, err := job.Once(ctx); err != nil || n != 0 {
				t.Fatalf("again: %d %v", n, err)
			}
			var d store.Notification
			if err := env.DB.NewSelect().Model(&d).Where("type = ?", templates.TypeDigest).Scan(ctx); err != nil {
				t.Fatal(err)
			}
			if d.Data["Count"] != float64(3) {
				t.Fatalf("digest data %v", d.Data)
			}
			if n := emails(); n != 2 {
				t.Fatalf("emails after the digest = %d", n)
			}
			var chans []string
			if err := env.DB.NewRaw("SELECT channel FROM deliveries WHERE notification_id = ?", d.ID).Scan(ctx, &chans); err != nil || len(chans) != 1 || chans[0] != "email" {
				t.Fatalf("digest channels %v %v", chans, err)
			}
			rendered, err := templates.Render(templates.TypeDigest, templates.ChannelEmail, "en", templates.Data{Count: 3})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("digest subject: %q", rendered.Subject)

			// A quiet hour makes no digest email.
			clk.set(t0.Add(121 * time.Minute))
			if n, err := job.Once(ctx); err != nil || n != 0 {
				t.Fatalf("quiet hour: %d %v", n, err)
			}
		})
	}
}

// The weekly summary goes once a week to each active doctor who has not
// opted out, with the past week's results and the pending orders.
func TestWeeklySummary(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresSQL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, name)
			env.EnsureTopics(t, env.Config.TopicSendNotification)
			ctx := context.Background()
			monday := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
			if got := digest.WeekStart(monday.Add(3*24*time.Hour + 5*time.Hour)); !got.Equal(monday) {
				t.Fatalf("week start %v", got)
			}
			clk := &clock{t: monday.Add(-2 * 24 * time.Hour)}
			notifier := notify.New(env.Outbox, env.Config.TopicSendNotification, env.Config.PortalURL, clk.now)
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := env.DB.NewRaw(q, args...).Exec(ctx); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			for _, d := range []string{"d1", "d2", "d3"} {
				doc := domain.Doctor{ID: d, ExternalUserID: "x" + d, Name: "Dr", Locale: "en", TimeZone: "UTC", Active: d != "d3", ProfileVersion: monday, CreatedAt: monday, UpdatedAt: monday}
				if _, err := env.DB.NewInsert().Model(&doc).Exec(ctx); err != nil {
					t.Fatal(err)
				}
			}
			optOut := domain.DefaultPreferences()
			optOut.NoWeeklySummary = true
			row := store.NewPreferencesRow("d2", optOut, monday)
			if _, err := env.DB.NewInsert().Model(&row).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{"r1", "r2"} {
				err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					_, err := notifier.Notify(ctx, tx, notify.Intent{Key: key, SourceEventID: key, Type: templates.TypeResultAvailable,
						Category: domain.CategoryResults, Priority: domain.PriorityNormal}, []string{"xd1"})
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			exec(`INSERT INTO orders (id, patient_ref, status, last_seq, last_event_at, created_at, updated_at) VALUES ('o1', 'p', 'in_progress', 1, ?, ?, ?), ('o2', 'p', 'completed', 1, ?, ?, ?)`,
				monday, monday, monday, monday, monday, monday)
			exec(`INSERT INTO order_doctors (order_id, doctor_external_id) VALUES ('o1', 'xd1'), ('o2', 'xd1')`)

			job := digest.NewWeekly(env.DB, notifier, clk.now, slog.New(slog.NewTextHandler(io.Discard, nil)))
			clk.set(monday.Add(time.Hour))
			if n, err := job.Once(ctx); err != nil || n != 1 {
				t.Fatalf("weekly: %d %v", n, err)
			}
			if n, err := job.Once(ctx); err != nil || n != 0 {
				t.Fatalf("weekly again: %d %v", n, err)
			}
			var s store.Notification
			if err := env.DB.NewSelect().Model(&s).Where("type = ?", templates.TypeWeeklySummary).Scan(ctx); err != nil {
				t.Fatal(err)
			}
			if s.DoctorID != "d1" || s.Data["Count"] != float64(2) || s.Data["PendingCount"] != float64(1) {
				t.Fatalf("summary %s %v", s.DoctorID, s.Data)
			}
			r, err := templates.Render(templates.TypeWeeklySummary, templates.ChannelEmail, "en", templates.Data{Count: 2, PendingCount: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("weekly summary email: %q / %q", r.Subject, r.Text)
		})
	}
}
