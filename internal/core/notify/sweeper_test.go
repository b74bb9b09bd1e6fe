package notify_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

func TestSweeper(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresSQL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, name)
			env.EnsureTopics(t, env.Config.TopicSendNotification)
			ctx := context.Background()
			now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			n := notify.New(env.Outbox, env.Config.TopicSendNotification, "https://portal.example", clock)
			reg := prometheus.NewRegistry()
			sw := notify.NewSweeper(env.DB, n, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
			reg.MustRegister(sw)
			intent := func(key string) notify.Intent {
				return notify.Intent{Key: key, SourceEventID: key, Type: templates.TypeResultAvailable,
					Category: domain.CategoryResults, Priority: domain.PriorityNormal}
			}
			err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				if _, err := n.Notify(ctx, tx, intent("a"), []string{"ext-raced"}); err != nil {
					return err
				}
				_, err := n.Notify(ctx, tx, intent("b"), []string{"ext-never"})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			// ext-raced registers without releasing its intents: the race
			// the sweeper closes.
			doc := domain.Doctor{ID: "d-raced", ExternalUserID: "ext-raced", Name: "Dr. Raced", Locale: "en", TimeZone: "UTC",
				Active: true, ProfileVersion: now, CreatedAt: now, UpdatedAt: now}
			if _, err := env.DB.NewInsert().Model(&doc).Exec(ctx); err != nil {
				t.Fatal(err)
			}

			released, reported, err := sw.SweepOnce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if released != 1 || reported != 0 {
				t.Fatalf("first sweep: released %d, reported %d; want 1, 0", released, reported)
			}
			if got := gauge(t, reg, "rfd_pending_notifications"); got != 1 {
				t.Fatalf("waiting gauge = %v, want 1", got)
			}

			now = now.Add(2 * time.Hour)
			_, reported, err = sw.SweepOnce(ctx)
			if err != nil || reported != 1 {
				t.Fatalf("second sweep: reported %d (err %v), want 1", reported, err)
			}
			_, reported, _ = sw.SweepOnce(ctx)
			if reported != 0 {
				t.Fatalf("third sweep reported %d again, want each overdue intent reported once", reported)
			}
			if got := gauge(t, reg, "rfd_pending_notifications_overdue"); got != 1 {
				t.Fatalf("overdue gauge = %v, want 1", got)
			}
		})
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// rfd_pending_notifications_overdue counts every intent that has waited
// longer than RFD_PENDING_REPORT_AFTER, at the moment of the scrape: one
// parked for a doctor never registered, and one stranded for a doctor who
// is registered (which the next sweep releases), reported or not; and the
// sweep runs often enough for a short threshold.
func TestPendingOverdueMetric(t *testing.T) {
	env := testenv.New(t, testenv.PostgresSQL)
	env.EnsureTopics(t, env.Config.TopicSendNotification)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	n := notify.New(env.Outbox, env.Config.TopicSendNotification, "https://portal.example", clock)
	reg := prometheus.NewRegistry()
	sw := notify.NewSweeper(env.DB, n, 2*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	reg.MustRegister(sw)
	if got := sw.Interval(); got != time.Second {
		t.Fatalf("sweep interval for a 2s threshold = %s, want 1s", got)
	}

	in := func(key string) notify.Intent {
		return notify.Intent{Key: key, SourceEventID: key, Type: templates.TypeCriticalResult,
			Category: domain.CategoryCriticalResults, Priority: domain.PriorityCritical}
	}
	err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := n.Notify(ctx, tx, in("never"), []string{"ext-never"}); err != nil {
			return err
		}
		_, err := n.Notify(ctx, tx, in("stranded"), []string{"ext-stranded"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	doc := domain.Doctor{ID: "d-stranded", ExternalUserID: "ext-stranded", Name: "Dr. Stranded", Locale: "en", TimeZone: "UTC",
		Active: true, ProfileVersion: now, CreatedAt: now, UpdatedAt: now}
	if _, err := env.DB.NewInsert().Model(&doc).Exec(ctx); err != nil {
		t.Fatal(err)
	}

	if got := gauge(t, reg, "rfd_pending_notifications_overdue"); got != 0 {
		t.Fatalf("overdue at once = %v, want 0", got)
	}
	now = now.Add(3 * time.Second)
	if got := gauge(t, reg, "rfd_pending_notifications_overdue"); got != 2 {
		t.Fatalf("overdue after 3s, before any sweep = %v, want 2", got)
	}
	released, reported, err := sw.SweepOnce(ctx)
	if err != nil || released != 1 || reported != 1 {
		t.Fatalf("sweep: released %d, reported %d (err %v); want 1, 1", released, reported, err)
	}
	for range 2 {
		if got := gauge(t, reg, "rfd_pending_notifications_overdue"); got != 1 {
			t.Fatalf("overdue after the sweep = %v, want 1: a reported intent still waits", got)
		}
		if _, _, err := sw.SweepOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := gauge(t, reg, "rfd_pending_notifications_scrape_error"); got != 0 {
		t.Fatalf("scrape error = %v", got)
	}
}
