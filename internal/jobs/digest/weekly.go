package digest

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/store"
)

// WeekStart is the Monday 00:00 UTC starting the week of t.
func WeekStart(t time.Time) time.Time {
	t = t.UTC()
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	offset := (int(d.Weekday()) + 6) % 7 // days since Monday
	return d.AddDate(0, 0, -offset)
}

// Weekly sends every active doctor who has not opted out one email a week:
// the results they received in the past week and their orders still
// pending, as counts only.
type Weekly struct {
	db       *bun.DB
	notifier *notify.Notifier
	now      func() time.Time
	logger   *slog.Logger
}

// NewWeekly returns the weekly summary job.
func NewWeekly(db *bun.DB, n *notify.Notifier, now func() time.Time, logger *slog.Logger) *Weekly {
	if now == nil {
		now = time.Now
	}
	return &Weekly{db: db, notifier: n, now: now, logger: logger}
}

// Run is the cron job.
func (w *Weekly) Run(ctx context.Context, _ time.Time) error {
	_, err := w.Once(ctx)
	return err
}

// Once sends the summaries of the week that ended at the start of this
// one, to each doctor once; it returns how many it sent.
func (w *Weekly) Once(ctx context.Context) (int, error) {
	week := WeekStart(w.now())
	ids, err := store.NewQueries(w.db).WeeklySummaryListDue(ctx, week)
	if err != nil {
		return 0, fmt.Errorf("weekly summary: %w", err)
	}
	sent := 0
	for _, id := range ids {
		err := w.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			q := store.NewQueries(tx)
			recorded, err := q.WeeklySummaryInsert(ctx, &store.WeeklySummaryInsertParams{DoctorID: id, WeekStart: week, At: w.now().UTC()})
			if err != nil {
				return fmt.Errorf("weekly summary: %w", err)
			}
			if !recorded {
				return nil
			}
			doc, err := q.DoctorGetByID(ctx, id)
			if err != nil {
				return fmt.Errorf("weekly summary: doctor: %w", err)
			}
			results, err := q.WeeklySummaryCountResults(ctx, &store.WeeklySummaryCountResultsParams{
				DoctorID: id, Categories: []string{string(domain.CategoryResults), string(domain.CategoryCriticalResults)},
				From: week.AddDate(0, 0, -7), To: week,
			})
			if err != nil {
				return fmt.Errorf("weekly summary: %w", err)
			}
			pending, err := q.WeeklySummaryCountPendingOrders(ctx, doc.ExternalUserID)
			if err != nil {
				return fmt.Errorf("weekly summary: %w", err)
			}
			nid, _, err := w.notifier.NotifyDoctor(ctx, tx, notify.Intent{
				Key: "weekly/" + id + "/" + week.Format(time.DateOnly), SourceEventID: "weekly-summary", Type: templates.TypeWeeklySummary,
				Category: domain.CategoryAnnouncements, Priority: domain.PriorityNormal,
				Detail: templates.Data{Count: results, PendingCount: pending}, Channels: []domain.Channel{domain.ChannelEmail},
			}, doc, "")
			if err != nil {
				return err
			}
			if err := q.WeeklySummarySetNotification(ctx, &store.WeeklySummarySetNotificationParams{DoctorID: id, WeekStart: week, NotificationID: nid}); err != nil {
				return fmt.Errorf("weekly summary: %w", err)
			}
			sent++
			return nil
		})
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}
