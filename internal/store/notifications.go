package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
)

// Notification is one notification to one doctor.
type Notification struct {
	bun.BaseModel `bun:"table:notifications"`

	ID             string          `bun:"id,pk"`
	DoctorID       string          `bun:"doctor_id"`
	Seq            int64           `bun:"seq"`
	DedupKey       string          `bun:"dedup_key"`
	Type           string          `bun:"type"`
	Category       domain.Category `bun:"category"`
	Priority       domain.Priority `bun:"priority"`
	Title          string          `bun:"title"`
	Body           string          `bun:"body"`
	Data           map[string]any  `bun:"data,type:json"`
	CheckupID      *string         `bun:"checkup_id"`
	ResultVersion  *int            `bun:"result_version"`
	OrderID        *string         `bun:"order_id"`
	SourceEventID  string          `bun:"source_event_id"`
	OnBehalfOf     *string         `bun:"on_behalf_of"`
	State          string          `bun:"state"`
	StateReason    string          `bun:"state_reason"`
	SupersededBy   *string         `bun:"superseded_by"`
	SendAt         time.Time       `bun:"send_at"`
	ExpiresAt      *time.Time      `bun:"expires_at"`
	CreatedAt      time.Time       `bun:"created_at"`
	ReadAt         *time.Time      `bun:"read_at"`
	AcknowledgedAt *time.Time      `bun:"acknowledged_at"`
	AcknowledgedBy *string         `bun:"acknowledged_by"`
	AckNote        *string         `bun:"ack_note"`
}

// NotificationGet is notification id, or ErrNotFound.
func (q *Queries) NotificationGet(ctx context.Context, id string) (*Notification, error) {
	var n Notification
	err := q.db.NewSelect().Model(&n).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load notification: %w", err)
	}
	return &n, nil
}
