package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/msgerr"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/store"
)

// OrderHistoryEvents keeps each order's current state and full timeline.
// Events carry a per-order sequence number and arrive duplicated and out of
// order: every event goes into the timeline, but only one with a higher
// sequence than the order's current one moves the state, so a late event
// never regresses it. Transitions to the configured statuses notify the
// referring doctors.
type OrderHistoryEvents struct {
	inbox    *store.Inbox
	notifier *notify.Notifier
	notifyOn []string
	now      func() time.Time
	// outOfOrder counts events absorbed into the timeline without moving
	// the state: they arrived after a later one.
	outOfOrder prometheus.Counter
}

// NewOrderHistoryEvents returns the consumer; its metric is registered in
// d.Registerer when there is one.
func NewOrderHistoryEvents(d Deps) *OrderHistoryEvents {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "rfd", Name: "order_events_out_of_order_total",
		Help: "Order history events that arrived after a later event of their order: kept in the timeline, not applied to the state.",
	})
	if d.Registerer != nil {
		if err := d.Registerer.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				c = are.ExistingCollector.(prometheus.Counter)
			}
		}
	}
	return &OrderHistoryEvents{inbox: d.Inbox, notifier: d.Notifier, notifyOn: d.Config.OrderNotifyStatuses, now: d.Now, outOfOrder: c}
}

// Handle processes one message.
func (h *OrderHistoryEvents) Handle(msg *message.Message) error {
	ev, err := events.DecodeOrderHistoryEvent(msg.Payload)
	if err != nil {
		return msgerr.Permanent(err)
	}
	late := false
	_, err = h.inbox.Process(msg.Context(), config.ConsumerOrderHistoryEvents, msg.UUID, func(ctx context.Context, tx bun.Tx) error {
		var err error
		late, err = h.apply(ctx, tx, msg.UUID, ev)
		return err
	})
	if err == nil && late {
		h.outOfOrder.Inc()
	}
	return err
}

// apply reports whether the event was late (absorbed without moving the state).
func (h *OrderHistoryEvents) apply(ctx context.Context, tx bun.Tx, eventID string, ev events.OrderHistoryEvent) (bool, error) {
	now := h.now().UTC()
	q := store.NewQueries(tx)
	// Create the order on its first event, whatever its sequence.
	if err := q.OrderCreate(ctx, &store.OrderCreateParams{ID: ev.OrderID, PatientRef: ev.Patient.Ref, Status: ev.Status,
		LastEventAt: ev.OccurredAt.UTC(), Now: now}); err != nil {
		return false, err
	}
	lastSeq, err := q.OrderGetLastSeq(ctx, ev.OrderID)
	if err != nil {
		return false, err
	}
	applies := int64(ev.Sequence) > lastSeq

	inserted, err := q.OrderEventInsert(ctx, &store.OrderEventInsertParams{OrderID: ev.OrderID, Seq: ev.Sequence, Status: ev.Status,
		Applied: applies, EventID: eventID, OccurredAt: ev.OccurredAt.UTC(), ReceivedAt: now})
	if err != nil {
		return false, err
	}
	if !inserted {
		return false, nil // this sequence number is already in the timeline
	}

	doctors := make([]string, 0, len(ev.ReferringDoctors))
	for _, d := range ev.ReferringDoctors {
		doctors = append(doctors, d.ExternalUserID)
		if err := q.OrderAddDoctor(ctx, &store.OrderAddDoctorParams{OrderID: ev.OrderID, ExternalID: d.ExternalUserID}); err != nil {
			return false, err
		}
	}
	if !applies {
		return true, nil // late: in the timeline, not in the state
	}
	if err := q.OrderUpdateState(ctx, &store.OrderUpdateStateParams{ID: ev.OrderID, Status: ev.Status, Seq: ev.Sequence,
		LastEventAt: ev.OccurredAt.UTC(), Now: now}); err != nil {
		return false, err
	}
	if !slices.Contains(h.notifyOn, ev.Status) {
		return false, nil
	}
	_, err = h.notifier.Notify(ctx, tx, notify.Intent{
		Key:           fmt.Sprintf("order/%s/%s/%d", ev.OrderID, ev.Status, ev.Sequence),
		SourceEventID: eventID,
		Type:          templates.TypeOrderStatus,
		Category:      domain.CategoryOrders,
		Priority:      domain.PriorityNormal,
		Detail: templates.Data{
			PatientRef:       ev.Patient.Ref,
			OrderID:          ev.OrderID,
			OrderStatus:      ev.Status,
			OrderDescription: ev.Description,
		},
		OrderID: ev.OrderID,
	}, doctors)
	return false, err
}
