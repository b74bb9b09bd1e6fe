package store

import (
	"context"
	"fmt"
	"time"
)

// OrderExecutor holds the statements on orders, their timeline and their
// referring doctors.
type OrderExecutor interface {
	OrderCreate(ctx context.Context, params *OrderCreateParams) error
	OrderGetLastSeq(ctx context.Context, id string) (int64, error)
	OrderUpdateState(ctx context.Context, params *OrderUpdateStateParams) error
	OrderAddDoctor(ctx context.Context, params *OrderAddDoctorParams) error
	OrderEventInsert(ctx context.Context, params *OrderEventInsertParams) (bool, error)
	OrderListVisible(ctx context.Context, params *OrderListVisibleParams) ([]Order, error)
	OrderGetVisible(ctx context.Context, params *OrderGetVisibleParams) (*Order, error)
	OrderEventList(ctx context.Context, orderID string) ([]OrderEvent, error)
	OrderListVisibleCheckupIDs(ctx context.Context, params *OrderGetVisibleParams) ([]string, error)
	OrderCountByStatus(ctx context.Context, params *OrderVisibleTo) ([]OrderStatusCount, error)
}

// OrderCreateParams creates order ID, at sequence 0, unless it exists.
type OrderCreateParams struct {
	ID          string
	PatientRef  string
	Status      string
	LastEventAt time.Time
	Now         time.Time
}

// OrderUpdateStateParams moves order ID to Status at sequence Seq.
type OrderUpdateStateParams struct {
	ID          string
	Status      string
	Seq         int64
	LastEventAt time.Time
	Now         time.Time
}

// OrderAddDoctorParams names a referring doctor of an order.
type OrderAddDoctorParams struct {
	OrderID    string
	ExternalID string
}

// OrderEventInsertParams puts event Seq of order OrderID in its timeline;
// Applied says whether it moved the order's state.
type OrderEventInsertParams struct {
	OrderID    string
	Seq        int64
	Status     string
	Applied    bool
	EventID    string
	OccurredAt time.Time
	ReceivedAt time.Time
}

func (q *Queries) OrderCreate(ctx context.Context, params *OrderCreateParams) error {
	if _, err := q.db.NewRaw(`INSERT INTO orders (id, patient_ref, status, last_seq, last_event_at, created_at, updated_at)
VALUES (?, ?, ?, 0, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		params.ID, params.PatientRef, params.Status, params.LastEventAt, params.Now, params.Now).Exec(ctx); err != nil {
		return fmt.Errorf("create order: %w", err)
	}
	return nil
}

// OrderGetLastSeq is the sequence number of the order's current state.
func (q *Queries) OrderGetLastSeq(ctx context.Context, id string) (int64, error) {
	var lastSeq int64
	if err := q.db.NewRaw(`SELECT last_seq FROM orders WHERE id = ?`, id).Scan(ctx, &lastSeq); err != nil {
		return 0, fmt.Errorf("read order: %w", err)
	}
	return lastSeq, nil
}

func (q *Queries) OrderUpdateState(ctx context.Context, params *OrderUpdateStateParams) error {
	if _, err := q.db.NewRaw(`UPDATE orders SET status = ?, last_seq = ?, last_event_at = ?, updated_at = ? WHERE id = ?`,
		params.Status, params.Seq, params.LastEventAt, params.Now, params.ID).Exec(ctx); err != nil {
		return fmt.Errorf("update order state: %w", err)
	}
	return nil
}

func (q *Queries) OrderAddDoctor(ctx context.Context, params *OrderAddDoctorParams) error {
	if _, err := q.db.NewRaw(`INSERT INTO order_doctors (order_id, doctor_external_id) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		params.OrderID, params.ExternalID).Exec(ctx); err != nil {
		return fmt.Errorf("record referring doctor: %w", err)
	}
	return nil
}

// OrderEventInsert reports false when that sequence number is already in
// the order's timeline.
func (q *Queries) OrderEventInsert(ctx context.Context, params *OrderEventInsertParams) (bool, error) {
	res, err := q.db.NewRaw(`INSERT INTO order_events (order_id, seq, status, applied, event_id, occurred_at, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id, seq) DO NOTHING`,
		params.OrderID, params.Seq, params.Status, params.Applied, params.EventID, params.OccurredAt, params.ReceivedAt).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("record order event: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// visibleOrderIDs selects the orders a doctor may see (args: the doctor's
// external user id, then their id): those naming them as a referring
// doctor, and those they were notified about.
const visibleOrderIDs = `SELECT order_id FROM order_doctors WHERE doctor_external_id = ?
UNION SELECT order_id FROM notifications WHERE doctor_id = ? AND order_id IS NOT NULL`

const orderColumns = "id, patient_ref, status, last_seq, last_event_at, created_at, updated_at"

// Order is a row of orders.
type Order struct {
	ID          string    `bun:"id"`
	PatientRef  string    `bun:"patient_ref"`
	Status      string    `bun:"status"`
	LastSeq     int64     `bun:"last_seq"`
	LastEventAt time.Time `bun:"last_event_at"`
	CreatedAt   time.Time `bun:"created_at"`
	UpdatedAt   time.Time `bun:"updated_at"`
}

// OrderEvent is an event of an order's timeline.
type OrderEvent struct {
	Seq        int64     `bun:"seq"`
	Status     string    `bun:"status"`
	Applied    bool      `bun:"applied"`
	OccurredAt time.Time `bun:"occurred_at"`
	ReceivedAt time.Time `bun:"received_at"`
}

// OrderStatusCount is how many of a doctor's orders have Status.
type OrderStatusCount struct {
	Status string `bun:"status"`
	N      int    `bun:"n"`
}

// OrderVisibleTo names a doctor by external user id and id.
type OrderVisibleTo struct {
	DoctorExternalID string
	DoctorID         string
}

// OrderListVisibleParams lists, newest first, at most Limit orders the
// doctor may see, after the order After when set, filtered by Status,
// PatientRef and Since when set.
type OrderListVisibleParams struct {
	OrderVisibleTo
	After      *OrderCursor
	Status     string
	PatientRef string
	Since      time.Time
	Limit      int
}

// OrderCursor is where a page of orders starts: after the order created
// at CreatedAt with ID.
type OrderCursor struct {
	CreatedAt time.Time
	ID        string
}

// OrderGetVisibleParams names order ID as the doctor sees it.
type OrderGetVisibleParams struct {
	OrderVisibleTo
	ID string
}

// OrderListVisible lists the doctor's orders (see the params).
func (q *Queries) OrderListVisible(ctx context.Context, params *OrderListVisibleParams) ([]Order, error) {
	cond, args := "id IN ("+visibleOrderIDs+")", []any{params.DoctorExternalID, params.DoctorID}
	if c := params.After; c != nil {
		cond, args = cond+" AND (created_at < ? OR (created_at = ? AND id < ?))", append(args, c.CreatedAt, c.CreatedAt, c.ID)
	}
	if params.Status != "" {
		cond, args = cond+" AND status = ?", append(args, params.Status)
	}
	if params.PatientRef != "" {
		cond, args = cond+" AND patient_ref = ?", append(args, params.PatientRef)
	}
	if !params.Since.IsZero() {
		cond, args = cond+" AND created_at >= ?", append(args, params.Since)
	}
	var rows []Order
	if err := q.db.NewRaw(`SELECT `+orderColumns+` FROM orders WHERE `+cond+` ORDER BY created_at DESC, id DESC LIMIT ?`,
		append(args, params.Limit)...).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	return rows, nil
}

// OrderGetVisible is the order if the doctor may see it, else ErrNotFound.
func (q *Queries) OrderGetVisible(ctx context.Context, params *OrderGetVisibleParams) (*Order, error) {
	var row Order
	if err := one(q.db.NewRaw(`SELECT `+orderColumns+` FROM orders WHERE id = ? AND id IN (`+visibleOrderIDs+`)`,
		params.ID, params.DoctorExternalID, params.DoctorID).Scan(ctx, &row), "load order"); err != nil {
		return nil, err
	}
	return &row, nil
}

// OrderEventList is the order's timeline, by sequence number.
func (q *Queries) OrderEventList(ctx context.Context, orderID string) ([]OrderEvent, error) {
	var events []OrderEvent
	if err := q.db.NewRaw(`SELECT seq, status, applied, occurred_at, received_at FROM order_events WHERE order_id = ? ORDER BY seq`, orderID).
		Scan(ctx, &events); err != nil {
		return nil, fmt.Errorf("order timeline: %w", err)
	}
	return events, nil
}

// OrderListVisibleCheckupIDs are the order's checkups the doctor may see,
// by id.
func (q *Queries) OrderListVisibleCheckupIDs(ctx context.Context, params *OrderGetVisibleParams) ([]string, error) {
	var ids []string
	if err := q.db.NewRaw(`SELECT id FROM checkups WHERE order_id = ? AND id IN (`+visibleCheckupIDs+`) ORDER BY id`,
		params.ID, params.DoctorExternalID, params.DoctorID).Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("checkups of order: %w", err)
	}
	return ids, nil
}

// OrderCountByStatus counts the doctor's orders by status.
func (q *Queries) OrderCountByStatus(ctx context.Context, params *OrderVisibleTo) ([]OrderStatusCount, error) {
	var byStatus []OrderStatusCount
	if err := q.db.NewRaw(`SELECT status, count(*) AS n FROM orders WHERE id IN (`+visibleOrderIDs+`) GROUP BY status`,
		params.DoctorExternalID, params.DoctorID).Scan(ctx, &byStatus); err != nil {
		return nil, fmt.Errorf("orders by status: %w", err)
	}
	return byStatus, nil
}
