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
	var ids []string
	if err := w.db.NewRaw(`SELECT d.id FROM doctors d LEFT JOIN doctor_preferences p ON p.doctor_id = d.id
WHERE d.active AND COALESCE(p.weekly_summary, TRUE)
  AND NOT EXISTS (SELECT 1 FROM weekly_summaries s WHERE s.doctor_id = d.id AND s.week_start = ?)
ORDER BY d.id`, week).Scan(ctx, &ids); err != nil {
		return 0, fmt.Errorf("weekly summary: doctors: %w", err)
	}
	sent := 0
	for _, id := range ids {
		err := w.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			res, err := tx.NewRaw(`INSERT INTO weekly_summaries (doctor_id, week_start, created_at) VALUES (?, ?, ?) ON CONFLICT (doctor_id, week_start) DO NOTHING`,
				id, week, w.now().UTC()).Exec(ctx)
			if err != nil {
				return fmt.Errorf("weekly summary: record: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return nil
			}
			var doc domain.Doctor
			if err := tx.NewSelect().Model(&doc).Where("id = ?", id).Scan(ctx); err != nil {
				return fmt.Errorf("weekly summary: doctor: %w", err)
			}
			var results, pending int
			if err := tx.NewRaw(`SELECT COUNT(*) FROM notifications WHERE doctor_id = ? AND on_behalf_of IS NULL AND category IN (?, ?)
AND created_at >= ? AND created_at < ?`, id, domain.CategoryResults, domain.CategoryCriticalResults, week.AddDate(0, 0, -7), week).Scan(ctx, &results); err != nil {
				return fmt.Errorf("weekly summary: results: %w", err)
			}
			if err := tx.NewRaw(`SELECT COUNT(*) FROM orders o JOIN order_doctors od ON od.order_id = o.id
WHERE od.doctor_external_id = ? AND o.status NOT IN ('completed', 'cancelled')`, doc.ExternalUserID).Scan(ctx, &pending); err != nil {
				return fmt.Errorf("weekly summary: pending orders: %w", err)
			}
			nid, _, err := w.notifier.NotifyDoctor(ctx, tx, notify.Intent{
				Key: "weekly/" + id + "/" + week.Format(time.DateOnly), SourceEventID: "weekly-summary", Type: templates.TypeWeeklySummary,
				Category: domain.CategoryAnnouncements, Priority: domain.PriorityNormal,
				Detail: templates.Data{Count: results, PendingCount: pending}, Channels: []domain.Channel{domain.ChannelEmail},
			}, doc, "")
			if err != nil {
				return err
			}
			if _, err := tx.NewRaw(`UPDATE weekly_summaries SET notification_id = ? WHERE doctor_id = ? AND week_start = ?`, nid, id, week).Exec(ctx); err != nil {
				return fmt.Errorf("weekly summary: record notification: %w", err)
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
