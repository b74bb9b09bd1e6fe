// Package digest sends doctors who chose a digest ("hourly" or
// "daily@HH:MM" in their time zone) one email summing up the non-critical
// notifications made since their last digest, instead of an email each (see
// notify: such doctors get no per-notification email for those). The email
// says how many, never what: no patient data in the subject or body.
package digest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
)

// PeriodEnd is the end of the latest digest period at or before now for a
// digest setting, in the doctor's time zone loc; ok=false for "off" or a
// setting it does not understand.
func PeriodEnd(setting string, now time.Time, loc *time.Location) (time.Time, bool) {
	switch {
	case setting == "hourly":
		return now.UTC().Truncate(time.Hour), true
	case strings.HasPrefix(setting, "daily@"):
		at, err := time.Parse("15:04", strings.TrimPrefix(setting, "daily@"))
		if err != nil {
			return time.Time{}, false
		}
		local := now.In(loc)
		end := time.Date(local.Year(), local.Month(), local.Day(), at.Hour(), at.Minute(), 0, 0, loc)
		if end.After(now) {
			end = time.Date(local.Year(), local.Month(), local.Day()-1, at.Hour(), at.Minute(), 0, 0, loc)
		}
		return end.UTC(), true
	}
	return time.Time{}, false
}

// Job makes the due digests.
type Job struct {
	db       *bun.DB
	notifier *notify.Notifier
	now      func() time.Time
	logger   *slog.Logger
}

// New returns the digest job.
func New(db *bun.DB, n *notify.Notifier, now func() time.Time, logger *slog.Logger) *Job {
	if now == nil {
		now = time.Now
	}
	return &Job{db: db, notifier: n, now: now, logger: logger}
}

// Run is the cron job.
func (j *Job) Run(ctx context.Context, _ time.Time) error {
	_, err := j.Once(ctx)
	return err
}

// Once makes every due digest and returns how many digest emails it queued.
func (j *Job) Once(ctx context.Context) (int, error) {
	var subs []struct {
		DoctorID  string    `bun:"doctor_id"`
		Digest    string    `bun:"digest"`
		UpdatedAt time.Time `bun:"updated_at"`
	}
	if err := j.db.NewRaw(`SELECT p.doctor_id, p.digest, p.updated_at FROM doctor_preferences p JOIN doctors d ON d.id = p.doctor_id
WHERE p.digest <> 'off' AND p.digest <> '' AND d.active ORDER BY p.doctor_id`).Scan(ctx, &subs); err != nil {
		return 0, fmt.Errorf("digest: subscribers: %w", err)
	}
	sent := 0
	for _, s := range subs {
		ok, err := j.one(ctx, s.DoctorID, s.Digest, s.UpdatedAt)
		if err != nil {
			return sent, err
		}
		if ok {
			sent++
		}
	}
	return sent, nil
}

// one makes the doctor's digest for the latest period, if not made yet.
func (j *Job) one(ctx context.Context, doctorID, setting string, enabledAt time.Time) (bool, error) {
	sent := false
	err := j.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var doc domain.Doctor
		if err := tx.NewSelect().Model(&doc).Where("id = ?", doctorID).Scan(ctx); err != nil {
			return fmt.Errorf("digest: doctor: %w", err)
		}
		now := j.now().UTC()
		end, ok := PeriodEnd(setting, now, doc.Location())
		if !ok {
			j.logger.WarnContext(ctx, "digest: unknown digest setting", "doctor_id", doctorID, "digest", setting)
			return nil
		}
		var last []time.Time
		if err := tx.NewRaw(`SELECT period_end FROM digests WHERE doctor_id = ? ORDER BY period_end DESC LIMIT 1`, doctorID).Scan(ctx, &last); err != nil {
			return fmt.Errorf("digest: last digest: %w", err)
		}
		since := enabledAt.UTC()
		if len(last) == 1 {
			since = last[0].UTC()
		}
		if !end.After(since) {
			return nil
		}
		var items int
		if err := tx.NewRaw(`SELECT COUNT(*) FROM notifications WHERE doctor_id = ? AND created_at > ? AND created_at <= ?
AND category NOT IN (?, ?) AND type <> ?`, doctorID, since, end, domain.CategoryCriticalResults, domain.CategorySecurity, templates.TypeDigest).Scan(ctx, &items); err != nil {
			return fmt.Errorf("digest: count: %w", err)
		}
		res, err := tx.NewRaw(`INSERT INTO digests (doctor_id, period_end, items, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (doctor_id, period_end) DO NOTHING`,
			doctorID, end, items, now).Exec(ctx)
		if err != nil {
			return fmt.Errorf("digest: record: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 || items == 0 {
			return nil
		}
		id, _, err := j.notifier.NotifyDoctor(ctx, tx, notify.Intent{
			Key: "digest/" + doctorID + "/" + end.Format(time.RFC3339), SourceEventID: "digest", Type: templates.TypeDigest,
			Category: domain.CategoryAnnouncements, Priority: domain.PriorityNormal, Detail: templates.Data{Count: items},
			Channels: []domain.Channel{domain.ChannelEmail},
		}, doc, "")
		if err != nil {
			return err
		}
		if _, err := tx.NewRaw(`UPDATE digests SET notification_id = ? WHERE doctor_id = ? AND period_end = ?`, id, doctorID, end).Exec(ctx); err != nil {
			return fmt.Errorf("digest: record notification: %w", err)
		}
		sent = true
		return nil
	})
	return sent, err
}
