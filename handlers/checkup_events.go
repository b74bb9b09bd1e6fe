package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
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
	"github.com/rfd-notify/rfd/internal/platform/groupcommit"
	"github.com/rfd-notify/rfd/internal/store"
)

// CheckupEvents consumes the checkup platform's events: a checkup scheduled,
// completed or cancelled, and its results. It keeps the checkup and every
// result version; the newest valid version notifies the referring doctors,
// a correction supersedes the notifications of earlier versions, and a
// cancelled or entered-in-error result retracts them.
//
// It is the high-volume consumer, so the events in hand at one time (one
// per Kafka partition) share a transaction: see groupcommit.
type CheckupEvents struct {
	inbox    *store.Inbox
	notifier *notify.Notifier
	now      func() time.Time
	group    *groupcommit.Group[checkupItem]
}

// checkupBatchesRunning is how many of the consumer's transactions may run
// at once. One: the events arriving meanwhile make the next batch larger,
// and two batches of one process never wait on each other's locks. (Two
// measured no faster, in batches half the size.)
const checkupBatchesRunning = 1

// checkupItem is one message in hand.
type checkupItem struct {
	id string // the message id: the inbox key
	ev events.CheckupEvent
}

// NewCheckupEvents returns the consumer.
func NewCheckupEvents(d Deps) *CheckupEvents {
	h := &CheckupEvents{inbox: d.Inbox, notifier: d.Notifier, now: d.Now}
	h.group = groupcommit.New(h.process, d.Config.CheckupEventsBatch, checkupBatchesRunning)
	return h
}

// Handle processes one message, in a transaction shared with the other
// messages in hand.
func (h *CheckupEvents) Handle(msg *message.Message) error {
	ev, err := events.DecodeCheckupEvent(msg.Payload)
	if err != nil {
		return msgerr.Permanent(err)
	}
	if ev.Result == nil && (ev.EventType == events.CheckupResultAvailable || ev.EventType == events.CheckupCriticalResult) {
		return msgerr.Permanentf("checkup event: /result: required for %s", ev.EventType)
	}
	return h.group.Do(msg.Context(), checkupItem{id: msg.UUID, ev: ev})
}

// process does the work of items in one transaction. Its reads are made
// once for all of them, which holds while no two of them concern the same
// checkup; items that do go to a later round of the same transaction.
func (h *CheckupEvents) process(ctx context.Context, items []checkupItem) error {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.id
	}
	_, err := h.inbox.ProcessBatch(ctx, config.ConsumerCheckupEvents, ids, func(ctx context.Context, tx bun.Tx, fresh []bool) error {
		var todo []checkupItem
		for i, it := range items {
			if fresh[i] {
				todo = append(todo, it)
			}
		}
		return h.work(ctx, tx, todo)
	})
	return err
}

// work does the work of todo, the fresh items of a batch, in tx.
func (h *CheckupEvents) work(ctx context.Context, tx bun.Tx, todo []checkupItem) error {
	u := notify.NewUnit(tx, store.NewBatch(tx))
	if err := lockLaterRoundsDoctors(ctx, tx, todo); err != nil {
		return err
	}
	for len(todo) > 0 {
		var round []checkupItem
		round, todo = distinctCheckups(todo)
		if err := h.round(ctx, tx, u, round); err != nil {
			return err
		}
		if len(todo) > 0 {
			if err := u.FlushWrites(ctx); err != nil { // the next round reads what this one wrote
				return err
			}
		}
	}
	return h.notifier.Flush(ctx, u)
}

// round applies items, which concern distinct checkups, after reading what
// they need in two queries.
func (h *CheckupEvents) round(ctx context.Context, tx bun.Tx, u *notify.Unit, items []checkupItem) error {
	checkups := make([]string, len(items))
	var wants []notify.Want
	for i, it := range items {
		checkups[i] = it.ev.CheckupID
		if key, ok := intentKey(it.ev); ok {
			for _, d := range it.ev.ReferringDoctors {
				wants = append(wants, notify.Want{IntentKey: key, ExternalID: d.ExternalUserID})
			}
		}
	}
	versions, err := store.NewQueries(tx).CheckupListResultVersions(ctx, checkups)
	if err != nil {
		return err
	}
	if err := h.notifier.Prefetch(ctx, u, wants); err != nil {
		return err
	}
	for _, it := range items {
		if err := h.apply(ctx, u, it.id, it.ev, versions[it.ev.CheckupID]); err != nil {
			return fmt.Errorf("checkup event %s: %w", it.id, err)
		}
	}
	return nil
}

// distinctCheckups splits items into the first item of each checkup, in
// order, and the rest.
func distinctCheckups(items []checkupItem) (round, rest []checkupItem) {
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if seen[it.ev.CheckupID] {
			rest = append(rest, it)
			continue
		}
		seen[it.ev.CheckupID] = true
		round = append(round, it)
	}
	return round, rest
}

// intentKey is the key of the notification ev makes, if it makes one.
func intentKey(ev events.CheckupEvent) (string, bool) {
	switch ev.EventType {
	case events.CheckupCompleted:
		return "checkup/" + ev.CheckupID + "/completed", true
	case events.CheckupResultAvailable, events.CheckupCriticalResult:
		if ev.Result == nil {
			return "", false
		}
		key := fmt.Sprintf("checkup/%s/result/%d", ev.CheckupID, ev.Result.Version)
		if withdrawn(ev.Result.Status) {
			key += "/retracted"
		}
		return key, true
	}
	return "", false
}

func withdrawn(status string) bool {
	return status == events.ResultCancelled || status == events.ResultEnteredInError
}

// apply does ev's work in u; versions are the result versions its checkup
// had before.
func (h *CheckupEvents) apply(ctx context.Context, u *notify.Unit, eventID string, ev events.CheckupEvent, versions []int) error {
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
	b := u.Batch()
	// The checkup's status follows the newest event by occurrence time: a
	// late "scheduled" never takes back a "completed".
	if err := b.CheckupUpsert(ctx, &store.CheckupUpsertParams{ID: ev.CheckupID, OrderID: ev.OrderID, PatientRef: ev.Patient.Ref,
		Status: status, ScheduledAt: scheduledAt, CompletedAt: completedAt, LastEventAt: ev.OccurredAt.UTC(), Now: now}); err != nil {
		return err
	}
	doctors := make([]string, 0, len(ev.ReferringDoctors))
	for _, d := range ev.ReferringDoctors {
		doctors = append(doctors, d.ExternalUserID)
		if err := b.CheckupAddDoctor(ctx, &store.CheckupAddDoctorParams{CheckupID: ev.CheckupID, ExternalID: d.ExternalUserID}); err != nil {
			return err
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
		// The doctors who were told about this checkup are told it was
		// withdrawn (in-app detail only; the other channels say "a result").
		_, err := h.notifier.RetractAndTell(ctx, u, ev.CheckupID, "checkup cancelled",
			retractedNotice("checkup/"+ev.CheckupID+"/cancelled", eventID, ev, base))
		return err
	case events.CheckupCompleted:
		key, _ := intentKey(ev)
		_, err := h.notifier.Add(ctx, u, notify.Intent{
			Key:           key,
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
		return h.applyResult(ctx, u, eventID, ev, base, doctors, versions)
	}
	return msgerr.Permanentf("checkup event: /event_type: unsupported value")
}

func (h *CheckupEvents) applyResult(ctx context.Context, u *notify.Unit, eventID string, ev events.CheckupEvent, base templates.Data, doctors []string, versions []int) error {
	r := ev.Result
	critical := r.Critical || ev.EventType == events.CheckupCriticalResult
	if slices.Contains(versions, r.Version) {
		return nil // this version is already known: another event carried it
	}
	latest := 0
	if len(versions) > 0 {
		latest = slices.Max(versions)
	}
	b := u.Batch()
	// A plain insert: should another transaction store the same version
	// meanwhile, this one fails on the key and is retried, then finds it.
	if err := b.CheckupResultVersionInsert(ctx, &store.CheckupResultVersionInsertParams{CheckupID: ev.CheckupID, Version: r.Version,
		Status: r.Status, Critical: critical, Result: resultJSON(r), EventID: eventID, OccurredAt: ev.OccurredAt.UTC(),
		ReceivedAt: h.now().UTC()}); err != nil {
		return err
	}
	if r.Version < latest {
		return nil // a late, older version: kept in the history, notifies no one
	}

	key, _ := intentKey(ev)
	if withdrawn(r.Status) {
		// Those who were told of the result are told it was withdrawn; a
		// doctor named now but never told anything is told nothing.
		_, err := h.notifier.RetractAndTell(ctx, u, ev.CheckupID, "result "+strings.ReplaceAll(r.Status, "_", " "),
			retractedNotice(key, eventID, ev, base))
		return err
	}

	in := notify.Intent{
		Key:           key,
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
	if _, err := h.notifier.Add(ctx, u, in, doctors); err != nil {
		return err
	}
	if latest > 0 {
		// After Add: the earlier versions' notifications point at the
		// new ones.
		return notify.Supersede(ctx, b, ev.CheckupID, r.Version)
	}
	return nil
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

// retractedNotice tells a doctor that a result they were told about was
// withdrawn: in-app carries the detail, the other channels say only "a
// result".
func retractedNotice(key, eventID string, ev events.CheckupEvent, base templates.Data) notify.Intent {
	return notify.Intent{
		Key:           key,
		SourceEventID: eventID,
		Type:          templates.TypeResultRetracted,
		Category:      domain.CategoryResults,
		Priority:      domain.PriorityHigh,
		Detail:        base,
		CheckupID:     ev.CheckupID,
		OrderID:       ev.OrderID,
	}
}

// lockLaterRoundsDoctors takes, before any doctor row is locked, the
// parking locks of every doctor a batch of several rounds names. A round
// takes the parking locks of the doctors it does not find before its
// writes lock doctor rows; a later round would take them after an earlier
// round's writes, the other way round from every other transaction. A
// batch of one round, the common case, takes none here.
func lockLaterRoundsDoctors(ctx context.Context, tx bun.Tx, todo []checkupItem) error {
	if _, rest := distinctCheckups(todo); len(rest) == 0 {
		return nil
	}
	var exts []string
	for _, it := range todo {
		for _, d := range it.ev.ReferringDoctors {
			exts = append(exts, d.ExternalUserID)
		}
	}
	return notify.LockDoctors(ctx, tx, exts)
}
