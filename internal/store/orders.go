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
