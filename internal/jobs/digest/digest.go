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
	"github.com/rfd-notify/rfd/internal/store"
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
	subs, err := store.NewQueries(j.db).DigestListSubscribers(ctx)
	if err != nil {
		return 0, fmt.Errorf("digest: %w", err)
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
		q := store.NewQueries(tx)
		doc, err := q.DoctorGetByID(ctx, doctorID)
		if err != nil {
			return fmt.Errorf("digest: doctor: %w", err)
		}
		now := j.now().UTC()
		end, ok := PeriodEnd(setting, now, doc.Location())
		if !ok {
			j.logger.WarnContext(ctx, "digest: unknown digest setting", "doctor_id", doctorID, "digest", setting)
			return nil
		}
		since := enabledAt.UTC()
		last, ok, err := q.DigestGetLastPeriodEnd(ctx, doctorID)
		if err != nil {
			return fmt.Errorf("digest: %w", err)
		}
		if ok {
			since = last
		}
		if !end.After(since) {
			return nil
		}
		items, err := q.DigestCountItems(ctx, &store.DigestCountItemsParams{
			DoctorID: doctorID, After: since, Until: end,
			ExcludeCategories: []string{string(domain.CategoryCriticalResults), string(domain.CategorySecurity)}, ExcludeType: templates.TypeDigest,
		})
		if err != nil {
			return fmt.Errorf("digest: %w", err)
		}
		recorded, err := q.DigestInsert(ctx, &store.DigestInsertParams{DoctorID: doctorID, PeriodEnd: end, Items: items, At: now})
		if err != nil {
			return fmt.Errorf("digest: %w", err)
		}
		if !recorded || items == 0 {
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
		if err := q.DigestSetNotification(ctx, &store.DigestSetNotificationParams{DoctorID: doctorID, PeriodEnd: end, NotificationID: id}); err != nil {
			return fmt.Errorf("digest: %w", err)
		}
		sent = true
		return nil
	})
	return sent, err
}
