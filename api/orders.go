package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/rfd-notify/rfd/internal/store"
)

// OrderSummary is an order as the list shows it.
type OrderSummary struct {
	ID          string    `json:"id" example:"ORD-2026-0001"`
	PatientRef  string    `json:"patient_ref" example:"PT-1001"`
	Status      string    `json:"status" enum:"placed,scheduled,sample_collected,in_progress,completed,cancelled" example:"in_progress"`
	Seq         int64     `json:"seq" doc:"Sequence number of the event that set the current status." example:"3"`
	LastEventAt time.Time `json:"last_event_at" example:"2026-11-25T01:03:00Z"`
	CreatedAt   time.Time `json:"created_at" example:"2026-11-25T01:00:00Z"`
	UpdatedAt   time.Time `json:"updated_at" example:"2026-11-25T01:03:05Z"`
}

// Order is an order with its whole timeline.
type Order struct {
	OrderSummary
	Timeline   []OrderEvent `json:"timeline" doc:"Every event received, by sequence number; a late event is listed but did not change the status (applied false)."`
	CheckupIDs []string     `json:"checkup_ids" doc:"The order's checkups the doctor can open." example:"[\"CHK-2026-0001\"]"`
}

// OrderEvent is one event of an order's timeline.
type OrderEvent struct {
	Seq        int64     `json:"seq" example:"2"`
	Status     string    `json:"status" enum:"placed,scheduled,sample_collected,in_progress,completed,cancelled" example:"sample_collected"`
	Applied    bool      `json:"applied" doc:"Whether the event moved the order's status (false for a late, out-of-order event)." example:"true"`
	OccurredAt time.Time `json:"occurred_at" example:"2026-11-25T01:02:00Z"`
	ReceivedAt time.Time `json:"received_at" example:"2026-11-25T01:02:01Z"`
}

// OrderPage is a page of orders, newest first.
type OrderPage struct {
	Items      []OrderSummary `json:"items"`
	NextCursor string         `json:"next_cursor,omitempty" doc:"Pass as cursor for the next page; absent on the last page." example:"bzEfMTc2NDAzMjQwMDAwMDAwMB9PUkQtMQ"`
}

type listOrdersInput struct {
	Limit      int       `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"Page size, at most 100."`
	Cursor     string    `query:"cursor" maxLength:"400" doc:"The next_cursor of the previous page."`
	Status     string    `query:"status" enum:"placed,scheduled,sample_collected,in_progress,completed,cancelled" doc:"Only orders in this status."`
	PatientRef string    `query:"patient_ref" maxLength:"100" doc:"Only this patient's orders."`
	Since      time.Time `query:"since" doc:"Only orders created at or after this time (RFC 3339)."`
}

type orderPageOutput struct {
	Body OrderPage
}

type getOrderInput struct {
	ID string `path:"id" maxLength:"200" doc:"The order's id." example:"ORD-2026-0001"`
}

type orderOutput struct {
	Body Order
}

func registerOrders(doctor *huma.Group, h *service) {
	huma.Register(doctor, huma.Operation{
		OperationID: "listOrders",
		Method:      http.MethodGet,
		Path:        "/v1/orders",
		Summary:     "List the doctor's orders",
		Description: "Orders of the doctor's referred patients, newest first, paged by an opaque cursor. Filters: status, patient_ref, since. Reading the list is audited.",
		Tags:        []string{"Orders"},
	}, h.listOrders)
	huma.Register(doctor, huma.Operation{
		OperationID: "getOrder",
		Method:      http.MethodGet,
		Path:        "/v1/orders/{id}",
		Summary:     "Get an order with its timeline",
		Description: "The order, every event of its timeline and its checkups. An order of another doctor's patient is 404. Every read is audited.",
		Tags:        []string{"Orders"},
		Errors:      []int{http.StatusNotFound},
	}, h.getOrder)
}

func orderSummary(r *store.Order) OrderSummary {
	return OrderSummary{ID: r.ID, PatientRef: r.PatientRef, Status: r.Status, Seq: r.LastSeq, LastEventAt: r.LastEventAt.UTC(),
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
}

func (h *service) listOrders(ctx context.Context, in *listOrdersInput) (*orderPageOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	params := &store.OrderListVisibleParams{OrderVisibleTo: store.OrderVisibleTo{DoctorExternalID: doc.ExternalUserID, DoctorID: doc.ID},
		Status: in.Status, PatientRef: in.PatientRef, Limit: in.Limit + 1}
	if in.Cursor != "" {
		at, id, err := parseTimeIDCursor("o1", in.Cursor)
		if err != nil {
			return nil, err
		}
		params.After = &store.OrderCursor{CreatedAt: at, ID: id}
	}
	if !in.Since.IsZero() {
		params.Since = in.Since.UTC()
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	rows, err := store.NewQueries(h.db).OrderListVisible(ctx, params)
	if err != nil {
		return nil, h.fail(ctx, "listOrders", err)
	}
	page := OrderPage{Items: make([]OrderSummary, 0, min(len(rows), in.Limit))}
	for i, r := range rows {
		if i == in.Limit {
			last := rows[i-1]
			page.NextCursor = timeIDCursor("o1", last.CreatedAt, last.ID)
			break
		}
		page.Items = append(page.Items, orderSummary(&r))
	}
	if len(page.Items) > 0 {
		ids := make([]string, len(page.Items))
		for i, it := range page.Items {
			ids[i] = it.ID
		}
		if err := h.audit(ctx, h.db, "order.list", "order", "", outcomeSuccess, map[string]any{"ids": ids}); err != nil {
			return nil, h.fail(ctx, "listOrders", err)
		}
	}
	return &orderPageOutput{Body: page}, nil
}

func (h *service) getOrder(ctx context.Context, in *getOrderInput) (*orderOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	q := store.NewQueries(h.db)
	visible := &store.OrderGetVisibleParams{ID: in.ID, OrderVisibleTo: store.OrderVisibleTo{DoctorExternalID: doc.ExternalUserID, DoctorID: doc.ID}}
	row, err := q.OrderGetVisible(ctx, visible)
	if errors.Is(err, store.ErrNotFound) {
		if err := h.audit(ctx, h.db, "order.view", "order", in.ID, outcomeNotFound, nil); err != nil {
			return nil, h.fail(ctx, "getOrder", err)
		}
		return nil, huma.Error404NotFound("no such order")
	}
	if err != nil {
		return nil, h.fail(ctx, "getOrder", err)
	}
	out := Order{OrderSummary: orderSummary(row), Timeline: []OrderEvent{}, CheckupIDs: []string{}}
	events, err := q.OrderEventList(ctx, row.ID)
	if err != nil {
		return nil, h.fail(ctx, "getOrder", err)
	}
	for _, e := range events {
		out.Timeline = append(out.Timeline, OrderEvent{Seq: e.Seq, Status: e.Status, Applied: e.Applied,
			OccurredAt: e.OccurredAt.UTC(), ReceivedAt: e.ReceivedAt.UTC()})
	}
	visible.ID = row.ID
	checkups, err := q.OrderListVisibleCheckupIDs(ctx, visible)
	if err != nil {
		return nil, h.fail(ctx, "getOrder", err)
	}
	out.CheckupIDs = append(out.CheckupIDs, checkups...)
	if err := h.audit(ctx, h.db, "order.view", "order", row.ID, outcomeSuccess, nil); err != nil {
		return nil, h.fail(ctx, "getOrder", err)
	}
	return &orderOutput{Body: out}, nil
}
