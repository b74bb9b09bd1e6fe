package handlers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/msgerr"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/store"
)

// InternalLogin appends every login to the append-only audit table and
// raises security notifications: a successful login from an IP not seen for
// the doctor within the new-device window, and a burst of failed logins
// within the failure window. Nothing else is stored.
type InternalLogin struct {
	inbox     *store.Inbox
	notifier  *notify.Notifier
	threshold int
	window    time.Duration
	newDevice time.Duration
	now       func() time.Time
}

// NewInternalLogin returns the consumer.
func NewInternalLogin(d Deps) *InternalLogin {
	return &InternalLogin{
		inbox: d.Inbox, notifier: d.Notifier, now: d.Now,
		threshold: d.Config.FailedLoginThreshold, window: d.Config.FailedLoginWindow, newDevice: d.Config.NewDeviceWindow,
	}
}

// Handle processes one message.
func (h *InternalLogin) Handle(msg *message.Message) error {
	ev, err := events.DecodeInternalLogin(msg.Payload)
	if err != nil {
		return msgerr.Permanent(err)
	}
	_, err = h.inbox.Process(msg.Context(), config.ConsumerInternalLogin, msg.UUID, func(ctx context.Context, tx bun.Tx) error {
		return h.apply(ctx, tx, msg.UUID, ev)
	})
	return err
}

func (h *InternalLogin) apply(ctx context.Context, tx bun.Tx, eventID string, ev events.InternalLogin) error {
	at := ev.OccurredAt.UTC()
	success := ev.Outcome == events.LoginSuccess
	q := store.NewQueries(tx)
	recorded, err := q.LoginAuditInsert(ctx, &store.LoginAuditInsertParams{
		EventID: eventID, DoctorExternalID: ev.ExternalUserID, Success: success, OccurredAt: at,
		SourceIP: ev.SourceIP, UserAgent: ev.UserAgent, Method: ev.Method, RecordedAt: h.now().UTC(),
	})
	if err != nil {
		return err
	}
	if !recorded {
		return nil
	}

	if success {
		return h.checkNewDevice(ctx, tx, q, eventID, ev, at)
	}
	return h.checkFailures(ctx, tx, q, eventID, ev, at)
}

func (h *InternalLogin) checkNewDevice(ctx context.Context, tx bun.Tx, q *store.Queries, eventID string, ev events.InternalLogin, at time.Time) error {
	history, err := q.LoginAuditCountSuccesses(ctx, &store.LoginAuditCountSuccessesParams{
		DoctorExternalID: ev.ExternalUserID, SourceIP: ev.SourceIP, ExceptEventID: eventID, From: at.Add(-h.newDevice), To: at})
	if err != nil {
		return err
	}
	// The very first login has nothing to compare with: no alert.
	if history.All == 0 || history.SameIP > 0 {
		return nil
	}
	_, err = h.notifier.Notify(ctx, tx, notify.Intent{
		Key:           "login/" + eventID + "/new-device",
		SourceEventID: eventID,
		Type:          templates.TypeNewDeviceLogin,
		Category:      domain.CategorySecurity,
		Priority:      domain.PriorityHigh,
		Detail:        templates.Data{DeviceHint: DeviceHint(ev.UserAgent)},
	}, []string{ev.ExternalUserID})
	return err
}

func (h *InternalLogin) checkFailures(ctx context.Context, tx bun.Tx, q *store.Queries, eventID string, ev events.InternalLogin, at time.Time) error {
	failures, err := q.LoginAuditCountFailures(ctx, &store.LoginAuditCountFailuresParams{
		DoctorExternalID: ev.ExternalUserID, After: at.Add(-h.window), Until: at})
	if err != nil {
		return err
	}
	if failures < h.threshold {
		return nil
	}
	// One alert per window bucket: a long burst does not alert on every try.
	bucket := at.Truncate(h.window).Unix()
	_, err = h.notifier.Notify(ctx, tx, notify.Intent{
		Key:           fmt.Sprintf("login/%s/failures/%d", ev.ExternalUserID, bucket),
		SourceEventID: eventID,
		Type:          templates.TypeFailedLoginAlert,
		Category:      domain.CategorySecurity,
		Priority:      domain.PriorityCritical,
		Detail:        templates.Data{DeviceHint: DeviceHint(ev.UserAgent), Count: failures},
	}, []string{ev.ExternalUserID})
	return err
}

// DeviceHint is a coarse "Browser on OS" from a user agent: enough for a
// doctor to recognise a login, without the IP or the full string.
func DeviceHint(userAgent string) string {
	ua := strings.ToLower(userAgent)
	browser := "a browser"
	switch {
	case strings.Contains(ua, "edg/"):
		browser = "Edge"
	case strings.Contains(ua, "chrome/"):
		browser = "Chrome"
	case strings.Contains(ua, "firefox/"):
		browser = "Firefox"
	case strings.Contains(ua, "safari/"):
		browser = "Safari"
	case ua == "":
		browser = "an unknown client"
	}
	os := ""
	switch {
	case strings.Contains(ua, "iphone"), strings.Contains(ua, "ipad"):
		os = "iOS"
	case strings.Contains(ua, "android"):
		os = "Android"
	case strings.Contains(ua, "mac os"):
		os = "macOS"
	case strings.Contains(ua, "windows"):
		os = "Windows"
	case strings.Contains(ua, "linux"):
		os = "Linux"
	}
	if os == "" {
		return browser
	}
	return browser + " on " + os
}
