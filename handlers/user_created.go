package handlers

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/msgerr"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/store"
)

// UserCreated registers referring doctors from user management. A repeat or
// a later update for the same external user id updates the profile (an
// older one is ignored), never duplicates it. A new doctor gets default
// preferences and a welcome notification, and the notifications that were
// waiting for them are released.
type UserCreated struct {
	inbox    *store.Inbox
	notifier *notify.Notifier
	now      func() time.Time
}

// NewUserCreated returns the consumer.
func NewUserCreated(d Deps) *UserCreated {
	return &UserCreated{inbox: d.Inbox, notifier: d.Notifier, now: d.Now}
}

// doctorNamespace derives a doctor's id from their external user id, so a
// doctor created twice concurrently is still one doctor.
var doctorNamespace = uuid.MustParse("8a6b6f1e-3c1d-4bb6-9d53-1f9f0f6a2d40")

// DoctorID is the service's id of the doctor with this external user id.
func DoctorID(externalUserID string) string {
	return uuid.NewSHA1(doctorNamespace, []byte(externalUserID)).String()
}

// Handle processes one message.
func (h *UserCreated) Handle(msg *message.Message) error {
	ev, err := events.DecodeUserCreated(msg.Payload)
	if err != nil {
		return msgerr.Permanent(err)
	}
	_, err = h.inbox.Process(msg.Context(), config.ConsumerUserCreated, msg.UUID, func(ctx context.Context, tx bun.Tx) error {
		return h.apply(ctx, tx, msg.UUID, ev)
	})
	return err
}

func (h *UserCreated) apply(ctx context.Context, tx bun.Tx, eventID string, ev events.UserCreated) error {
	if ev.UserType != events.UserTypeReferringDoctor {
		return nil // staff and admins are not notified by this service
	}
	now := h.now().UTC()
	locale := ev.Locale
	if locale == "" {
		locale = "en"
	}
	tz := ev.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return msgerr.Permanentf("user created: /time_zone: unknown time zone")
	}
	active := true
	if ev.Active != nil {
		active = *ev.Active
	}
	clinic := ""
	if ev.Clinic != nil {
		clinic = ev.Clinic.Name
	}
	id := DoctorID(ev.ExternalUserID)

	// The doctor's parking lock before the doctor's row: every transaction
	// takes the two in that order (a checkup batch takes parking locks
	// before it locks doctor rows), so they cannot deadlock; the release
	// below holds it already.
	if err := notify.LockDoctors(ctx, tx, []string{ev.ExternalUserID}); err != nil {
		return err
	}
	// Insert, or update when this event is not older than the profile.
	q := store.NewQueries(tx)
	if err := q.DoctorUpsertProfile(ctx, &store.DoctorUpsertProfileParams{
		ID: id, ExternalUserID: ev.ExternalUserID, Name: ev.Name, LicenceNumber: ev.LicenceNumber, Specialty: ev.Specialty,
		Clinic: clinic, Email: ev.Email, Phone: ev.Phone, Locale: locale, TimeZone: tz, Active: active,
		ProfileVersion: ev.UpdatedAt.UTC(), Now: now,
	}); err != nil {
		return err
	}
	prefs := store.NewPreferencesRow(id, domain.DefaultPreferences(), now)
	if err := q.PreferencesInsertIfAbsent(ctx, &prefs); err != nil {
		return err
	}

	// The welcome notification's dedup key is per doctor: a repeat or an
	// update of the profile never welcomes twice.
	if _, err := h.notifier.Notify(ctx, tx, notify.Intent{
		Key:           "doctor/" + ev.ExternalUserID + "/welcome",
		SourceEventID: eventID,
		Type:          templates.TypeWelcome,
		Category:      domain.CategoryAnnouncements,
		Priority:      domain.PriorityNormal,
	}, []string{ev.ExternalUserID}); err != nil {
		return err
	}
	if _, err := h.notifier.ReleasePending(ctx, tx, ev.ExternalUserID); err != nil {
		return err
	}
	return nil
}
