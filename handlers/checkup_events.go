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
	// Every write goes into one batch, flushed with the notifications: on
	// PostgreSQL the whole event is a handful of round trips.
	b := store.NewBatch(tx)
	// The checkup's status follows the newest event by occurrence time: a
	// late "scheduled" never takes back a "completed".
	err := b.Exec(ctx, `INSERT INTO checkups (id, order_id, patient_ref, status, scheduled_at, completed_at, last_event_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
	status = CASE WHEN excluded.last_event_at >= checkups.last_event_at THEN excluded.status ELSE checkups.status END,
	scheduled_at = COALESCE(excluded.scheduled_at, checkups.scheduled_at),
	completed_at = COALESCE(checkups.completed_at, excluded.completed_at),
	last_event_at = CASE WHEN excluded.last_event_at >= checkups.last_event_at THEN excluded.last_event_at ELSE checkups.last_event_at END,
	updated_at = excluded.updated_at`,
		ev.CheckupID, ev.OrderID, ev.Patient.Ref, status, scheduledAt, completedAt, ev.OccurredAt.UTC(), now, now)
	if err != nil {
		return fmt.Errorf("upsert checkup: %w", err)
	}
	doctors := make([]string, 0, len(ev.ReferringDoctors))
	for _, d := range ev.ReferringDoctors {
		doctors = append(doctors, d.ExternalUserID)
		if err := b.Exec(ctx, `INSERT INTO checkup_doctors (checkup_id, doctor_external_id) VALUES (?, ?) ON CONFLICT DO NOTHING`, ev.CheckupID, d.ExternalUserID); err != nil {
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
		return b.Flush(ctx) // kept on the checkup; not worth a doctor's attention
	case events.CheckupCancelled:
		if err := notify.Retract(ctx, b, ev.CheckupID, "checkup cancelled"); err != nil {
			return err
		}
		return b.Flush(ctx)
	case events.CheckupCompleted:
		_, err := h.notifier.NotifyIn(ctx, tx, b, notify.Intent{
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
		return h.applyResult(ctx, tx, b, eventID, ev, base, doctors)
	}
	return msgerr.Permanentf("checkup event: /event_type: unsupported value")
}

// resultVersionsQuery reads the newest result version of a checkup and
// whether a given version is already stored.
const resultVersionsQuery = `SELECT COALESCE(MAX(version), 0), COALESCE(SUM(CASE WHEN version = ? THEN 1 ELSE 0 END), 0)
FROM result_versions WHERE checkup_id = ?`

func (h *CheckupEvents) applyResult(ctx context.Context, tx bun.Tx, b *store.Batch, eventID string, ev events.CheckupEvent, base templates.Data, doctors []string) error {
	r := ev.Result
	if r == nil {
		return msgerr.Permanentf("checkup event: /result: required for %s", ev.EventType)
	}
	critical := r.Critical || ev.EventType == events.CheckupCriticalResult

	latest, known, err := resultVersions(ctx, tx, ev.CheckupID, r.Version)
	if err != nil {
		return err
	}
	if known {
		return b.Flush(ctx) // this version is already known: another event carried it
	}
	// A plain insert: should another transaction store the same version
	// meanwhile, this one fails on the key and is retried, then finds it.
	err = b.Exec(ctx, `INSERT INTO result_versions (checkup_id, version, status, critical, result, event_id, occurred_at, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		ev.CheckupID, r.Version, r.Status, critical, resultJSON(r), eventID, ev.OccurredAt.UTC(), h.now().UTC())
	if err != nil {
		return fmt.Errorf("store result version: %w", err)
	}
	if r.Version < latest {
		return b.Flush(ctx) // a late, older version: kept in the history, notifies no one
	}

	switch r.Status {
	case events.ResultCancelled, events.ResultEnteredInError:
		if err := notify.Retract(ctx, b, ev.CheckupID, "result "+strings.ReplaceAll(r.Status, "_", " ")); err != nil {
			return err
		}
		_, err := h.notifier.NotifyIn(ctx, tx, b, notify.Intent{
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

	if latest > 0 {
		if err := notify.Supersede(ctx, b, ev.CheckupID, r.Version); err != nil {
			return err
		}
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
	_, err = h.notifier.NotifyIn(ctx, tx, b, in, doctors)
	return err
}

func resultVersions(ctx context.Context, tx bun.Tx, checkupID string, version int) (latest int, known bool, err error) {
	rows, err := store.QueryContext(ctx, tx, resultVersionsQuery, version, checkupID)
	if err != nil {
		return 0, false, fmt.Errorf("latest result version: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var n int
	if rows.Next() {
		if err := rows.Scan(&latest, &n); err != nil {
			return 0, false, fmt.Errorf("latest result version: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, false, fmt.Errorf("latest result version: %w", err)
	}
	return latest, n > 0, nil
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
