package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/config"
	"github.com/rfd-notify/rfd/domain"
	"github.com/rfd-notify/rfd/events"
	"github.com/rfd-notify/rfd/msgerr"
	"github.com/rfd-notify/rfd/notify"
	"github.com/rfd-notify/rfd/store"
	"github.com/rfd-notify/rfd/templates"
)

// CheckupEvents consumes the checkup platform's events: a checkup scheduled,
// completed or cancelled, and its results. It keeps the checkup and every
// result version; the newest valid version notifies the referring doctors,
// a correction supersedes the notifications of earlier versions, and a
// cancelled or entered-in-error result retracts them.
type CheckupEvents struct {
	inbox    *store.Inbox
	notifier *notify.Notifier
	now      func() time.Time
}

// NewCheckupEvents returns the consumer.
func NewCheckupEvents(d Deps) *CheckupEvents {
	return &CheckupEvents{inbox: d.Inbox, notifier: d.Notifier, now: d.Now}
}

// Handle processes one message.
func (h *CheckupEvents) Handle(msg *message.Message) error {
	ev, err := events.DecodeCheckupEvent(msg.Payload)
	if err != nil {
		return msgerr.Permanent(err)
	}
	_, err = h.inbox.Process(msg.Context(), config.ConsumerCheckupEvents, msg.UUID, func(ctx context.Context, tx bun.Tx) error {
		return h.apply(ctx, tx, msg.UUID, ev)
	})
	return err
}

func (h *CheckupEvents) apply(ctx context.Context, tx bun.Tx, eventID string, ev events.CheckupEvent) error {
	now := h.now().UTC()
	status := checkupStatus(ev.EventType)
	var completedAt *time.Time
	if ev.EventType == events.CheckupCompleted {
		t := ev.OccurredAt.UTC()
		completedAt = &t
	}
	var scheduledAt *time.Time
	if ev.ScheduledAt != nil {
		t := ev.ScheduledAt.UTC()
		scheduledAt = &t
	}
	// The checkup's status follows the newest event by occurrence time: a
	// late "scheduled" never takes back a "completed".
	_, err := tx.NewRaw(`INSERT INTO checkups (id, order_id, patient_ref, status, scheduled_at, completed_at, last_event_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
	status = CASE WHEN excluded.last_event_at >= checkups.last_event_at THEN excluded.status ELSE checkups.status END,
	scheduled_at = COALESCE(excluded.scheduled_at, checkups.scheduled_at),
	completed_at = COALESCE(checkups.completed_at, excluded.completed_at),
	last_event_at = CASE WHEN excluded.last_event_at >= checkups.last_event_at THEN excluded.last_event_at ELSE checkups.last_event_at END,
	updated_at = excluded.updated_at`,
		ev.CheckupID, ev.OrderID, ev.Patient.Ref, status, scheduledAt, completedAt, ev.OccurredAt.UTC(), now, now).Exec(ctx)
	if err != nil {
		return fmt.Errorf("upsert checkup: %w", err)
	}
	doctors := make([]string, 0, len(ev.ReferringDoctors))
	for _, d := range ev.ReferringDoctors {
		doctors = append(doctors, d.ExternalUserID)
		if _, err := tx.NewRaw(`INSERT INTO checkup_doctors (checkup_id, doctor_external_id) VALUES (?, ?) ON CONFLICT DO NOTHING`, ev.CheckupID, d.ExternalUserID).Exec(ctx); err != nil {
			return fmt.Errorf("record referring doctor: %w", err)
		}
	}

	base := templates.Data{
		PatientName: ev.Patient.DisplayName,
		PatientRef:  ev.Patient.Ref,
		CheckupID:   ev.CheckupID,
		OrderID:     ev.OrderID,
	}
	switch ev.EventType {
	case events.CheckupScheduled:
		return nil // kept on the checkup; not worth a doctor's attention
	case events.CheckupCancelled:
		_, err := notify.Retract(ctx, tx, ev.CheckupID, "checkup cancelled")
		return err
	case events.CheckupCompleted:
		_, err := h.notifier.Notify(ctx, tx, notify.Intent{
			Key:           "checkup/" + ev.CheckupID + "/completed",
			SourceEventID: eventID,
			Type:          templates.TypeCheckupCompleted,
			Category:      domain.CategoryResults,
			Priority:      domain.PriorityNormal,
			Detail:        base,
			CheckupID:     ev.CheckupID,
			OrderID:       ev.OrderID,
		}, doctors)
		return err
	case events.CheckupResultAvailable, events.CheckupCriticalResult:
		return h.applyResult(ctx, tx, eventID, ev, base, doctors)
	}
	return msgerr.Permanentf("checkup event: /event_type: unsupported value")
}

func (h *CheckupEvents) applyResult(ctx context.Context, tx bun.Tx, eventID string, ev events.CheckupEvent, base templates.Data, doctors []string) error {
	r := ev.Result
	if r == nil {
		return msgerr.Permanentf("checkup event: /result: required for %s", ev.EventType)
	}
	critical := r.Critical || ev.EventType == events.CheckupCriticalResult

	var latest int
	if err := tx.NewRaw(`SELECT COALESCE(MAX(version), 0) FROM result_versions WHERE checkup_id = ?`, ev.CheckupID).Scan(ctx, &latest); err != nil {
		return fmt.Errorf("latest result version: %w", err)
	}
	res, err := tx.NewRaw(`INSERT INTO result_versions (checkup_id, version, status, critical, result, event_id, occurred_at, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (checkup_id, version) DO NOTHING`,
		ev.CheckupID, r.Version, r.Status, critical, resultJSON(r), eventID, ev.OccurredAt.UTC(), h.now().UTC()).Exec(ctx)
	if err != nil {
		return fmt.Errorf("store result version: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // this version is already known: another event carried it
	}
	if r.Version < latest {
		return nil // a late, older version: kept in the history, notifies no one
	}

	switch r.Status {
	case events.ResultCancelled, events.ResultEnteredInError:
		if _, err := notify.Retract(ctx, tx, ev.CheckupID, "result "+strings.ReplaceAll(r.Status, "_", " ")); err != nil {
			return err
		}
		_, err := h.notifier.Notify(ctx, tx, notify.Intent{
			Key:           fmt.Sprintf("checkup/%s/result/%d/retracted", ev.CheckupID, r.Version),
			SourceEventID: eventID,
			Type:          templates.TypeResultRetracted,
			Category:      domain.CategoryResults,
			Priority:      domain.PriorityHigh,
			Detail:        base,
			CheckupID:     ev.CheckupID,
			OrderID:       ev.OrderID,
		}, doctors)
		return err
	}

	if _, err := notify.Supersede(ctx, tx, ev.CheckupID, r.Version); err != nil {
		return err
	}
	in := notify.Intent{
		Key:           fmt.Sprintf("checkup/%s/result/%d", ev.CheckupID, r.Version),
		SourceEventID: eventID,
		Type:          templates.TypeResultAvailable,
		Category:      domain.CategoryResults,
		Priority:      domain.PriorityNormal,
		Detail:        withResult(base, r),
		CheckupID:     ev.CheckupID,
		ResultVersion: r.Version,
		OrderID:       ev.OrderID,
	}
	if r.Status == events.ResultCorrected {
		in.Type = templates.TypeResultCorrected
		in.Priority = domain.PriorityHigh
	}
	if critical {
		in.Type = templates.TypeCriticalResult
		in.Category = domain.CategoryCriticalResults
		in.Priority = domain.PriorityCritical
	}
	_, err = h.notifier.Notify(ctx, tx, in, doctors)
	return err
}

func checkupStatus(eventType string) string {
	switch eventType {
	case events.CheckupScheduled:
		return "scheduled"
	case events.CheckupCancelled:
		return "cancelled"
	case events.CheckupResultAvailable, events.CheckupCriticalResult:
		return "resulted"
	default:
		return "completed"
	}
}

func withResult(d templates.Data, r *events.Result) templates.Data {
	if len(r.Tests) > 0 {
		t := r.Tests[0]
		d.TestName = t.Name
		d.ResultValue = strings.TrimSpace(t.Value + " " + t.Unit)
		if len(r.Tests) > 1 {
			d.TestName = fmt.Sprintf("%s (+%d more)", t.Name, len(r.Tests)-1)
		}
	}
	return d
}

func resultJSON(r *events.Result) string {
	b, err := json.Marshal(r)
	if err != nil {
		return "{}"
	}
	return string(b)
}
