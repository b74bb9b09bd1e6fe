package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// DigestExecutor holds the statements of the digest jobs: digests (a
// doctor's digest e-mail per period) and weekly_summaries (the weekly
// summary e-mail per week), with the counts that go into them.
type DigestExecutor interface {
	DigestListSubscribers(ctx context.Context) ([]DigestSubscriber, error)
	DigestGetLastPeriodEnd(ctx context.Context, doctorID string) (time.Time, bool, error)
	DigestCountItems(ctx context.Context, params *DigestCountItemsParams) (int, error)
	DigestInsert(ctx context.Context, params *DigestInsertParams) (bool, error)
	DigestSetNotification(ctx context.Context, params *DigestSetNotificationParams) error

	WeeklySummaryListDue(ctx context.Context, weekStart time.Time) ([]string, error)
	WeeklySummaryInsert(ctx context.Context, params *WeeklySummaryInsertParams) (bool, error)
	WeeklySummaryCountResults(ctx context.Context, params *WeeklySummaryCountResultsParams) (int, error)
	WeeklySummaryCountPendingOrders(ctx context.Context, doctorExternalID string) (int, error)
	WeeklySummarySetNotification(ctx context.Context, params *WeeklySummarySetNotificationParams) error
}

// DigestSubscriber is an active doctor who chose a digest, with the time
// the preference last changed (the start of their first period).
type DigestSubscriber struct {
	DoctorID  string    `bun:"doctor_id"`
	Digest    string    `bun:"digest"`
	UpdatedAt time.Time `bun:"updated_at"`
}

// DigestCountItemsParams counts DoctorID's notifications made in
// (After, Until], leaving out ExcludeCategories and ExcludeType (the
// digests themselves).
type DigestCountItemsParams struct {
	DoctorID          string
	After             time.Time
	Until             time.Time
	ExcludeCategories []string
	ExcludeType       string
}

// DigestInsertParams records DoctorID's digest for the period ending
// PeriodEnd, of Items notifications, made At.
type DigestInsertParams struct {
	DoctorID  string
	PeriodEnd time.Time
	Items     int
	At        time.Time
}

// DigestSetNotificationParams links a digest to the notification that
// carries it.
type DigestSetNotificationParams struct {
	DoctorID       string
	PeriodEnd      time.Time
	NotificationID string
}

// WeeklySummaryInsertParams records DoctorID's summary of the week
// starting WeekStart, made At.
type WeeklySummaryInsertParams struct {
	DoctorID  string
	WeekStart time.Time
	At        time.Time
}

// WeeklySummaryCountResultsParams counts DoctorID's own notifications of
// Categories made in [From, To).
type WeeklySummaryCountResultsParams struct {
	DoctorID   string
	Categories []string
	From       time.Time
	To         time.Time
}

// WeeklySummarySetNotificationParams links a weekly summary to the
// notification that carries it.
type WeeklySummarySetNotificationParams struct {
	DoctorID       string
	WeekStart      time.Time
	NotificationID string
}

// DigestListSubscribers lists the active doctors with a digest, by id.
func (q *Queries) DigestListSubscribers(ctx context.Context) ([]DigestSubscriber, error) {
	var subs []DigestSubscriber
	if err := q.db.NewRaw(`SELECT p.doctor_id, p.digest, p.updated_at FROM doctor_preferences p JOIN doctors d ON d.id = p.doctor_id
WHERE p.digest <> 'off' AND p.digest <> '' AND d.active ORDER BY p.doctor_id`).Scan(ctx, &subs); err != nil {
		return nil, fmt.Errorf("list digest subscribers: %w", err)
	}
	return subs, nil
}

// DigestGetLastPeriodEnd is the end of the doctor's latest digest; ok=false
// when they have none.
func (q *Queries) DigestGetLastPeriodEnd(ctx context.Context, doctorID string) (time.Time, bool, error) {
	var last []time.Time
	if err := q.db.NewRaw(`SELECT period_end FROM digests WHERE doctor_id = ? ORDER BY period_end DESC LIMIT 1`, doctorID).Scan(ctx, &last); err != nil {
		return time.Time{}, false, fmt.Errorf("last digest: %w", err)
	}
	if len(last) == 0 {
		return time.Time{}, false, nil
	}
	return last[0].UTC(), true, nil
}

func (q *Queries) DigestCountItems(ctx context.Context, params *DigestCountItemsParams) (int, error) {
	var items int
	if err := q.db.NewRaw(`SELECT COUNT(*) FROM notifications WHERE doctor_id = ? AND created_at > ? AND created_at <= ?
AND category NOT IN (?) AND type <> ?`, params.DoctorID, params.After, params.Until, bun.List(params.ExcludeCategories), params.ExcludeType).Scan(ctx, &items); err != nil {
		return 0, fmt.Errorf("count digest items: %w", err)
	}
	return items, nil
}

// DigestInsert reports whether it recorded the digest: false when the
// period's digest exists already.
func (q *Queries) DigestInsert(ctx context.Context, params *DigestInsertParams) (bool, error) {
	res, err := q.db.NewRaw(`INSERT INTO digests (doctor_id, period_end, items, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (doctor_id, period_end) DO NOTHING`,
		params.DoctorID, params.PeriodEnd, params.Items, params.At).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("insert digest: %w", err)
	}
	// As before the data layer: a driver that cannot count counts none.
	n, _ := res.RowsAffected()
	return n > 0, nil
}

func (q *Queries) DigestSetNotification(ctx context.Context, params *DigestSetNotificationParams) error {
	if _, err := q.db.NewRaw(`UPDATE digests SET notification_id = ? WHERE doctor_id = ? AND period_end = ?`,
		params.NotificationID, params.DoctorID, params.PeriodEnd).Exec(ctx); err != nil {
		return fmt.Errorf("set digest notification: %w", err)
	}
	return nil
}

// WeeklySummaryListDue lists, by id, the active doctors who have not
// opted out of the weekly summary and have none for the week yet.
func (q *Queries) WeeklySummaryListDue(ctx context.Context, weekStart time.Time) ([]string, error) {
	var ids []string
	if err := q.db.NewRaw(`SELECT d.id FROM doctors d LEFT JOIN doctor_preferences p ON p.doctor_id = d.id
WHERE d.active AND COALESCE(p.weekly_summary, TRUE)
  AND NOT EXISTS (SELECT 1 FROM weekly_summaries s WHERE s.doctor_id = d.id AND s.week_start = ?)
ORDER BY d.id`, weekStart).Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("list weekly summaries due: %w", err)
	}
	return ids, nil
}

// WeeklySummaryInsert reports whether it recorded the summary: false when
// the week's summary exists already.
func (q *Queries) WeeklySummaryInsert(ctx context.Context, params *WeeklySummaryInsertParams) (bool, error) {
	res, err := q.db.NewRaw(`INSERT INTO weekly_summaries (doctor_id, week_start, created_at) VALUES (?, ?, ?) ON CONFLICT (doctor_id, week_start) DO NOTHING`,
		params.DoctorID, params.WeekStart, params.At).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("insert weekly summary: %w", err)
	}
	// As before the data layer: a driver that cannot count counts none.
	n, _ := res.RowsAffected()
	return n > 0, nil
}

func (q *Queries) WeeklySummaryCountResults(ctx context.Context, params *WeeklySummaryCountResultsParams) (int, error) {
	var results int
	if err := q.db.NewRaw(`SELECT COUNT(*) FROM notifications WHERE doctor_id = ? AND on_behalf_of IS NULL AND category IN (?)
AND created_at >= ? AND created_at < ?`, params.DoctorID, bun.List(params.Categories), params.From, params.To).Scan(ctx, &results); err != nil {
		return 0, fmt.Errorf("count weekly results: %w", err)
	}
	return results, nil
}

// WeeklySummaryCountPendingOrders counts the doctor's orders neither
// completed nor cancelled.
func (q *Queries) WeeklySummaryCountPendingOrders(ctx context.Context, doctorExternalID string) (int, error) {
	var pending int
	if err := q.db.NewRaw(`SELECT COUNT(*) FROM orders o JOIN order_doctors od ON od.order_id = o.id
WHERE od.doctor_external_id = ? AND o.status NOT IN ('completed', 'cancelled')`, doctorExternalID).Scan(ctx, &pending); err != nil {
		return 0, fmt.Errorf("count pending orders: %w", err)
	}
	return pending, nil
}

func (q *Queries) WeeklySummarySetNotification(ctx context.Context, params *WeeklySummarySetNotificationParams) error {
	if _, err := q.db.NewRaw(`UPDATE weekly_summaries SET notification_id = ? WHERE doctor_id = ? AND week_start = ?`,
		params.NotificationID, params.DoctorID, params.WeekStart).Exec(ctx); err != nil {
		return fmt.Errorf("set weekly summary notification: %w", err)
	}
	return nil
}
