package store

import (
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
)

// Delivery is one notification on one channel.
type Delivery struct {
	bun.BaseModel `bun:"table:deliveries"`

	ID             string         `bun:"id,pk"`
	NotificationID string         `bun:"notification_id"`
	Channel        domain.Channel `bun:"channel"`
	Status         string         `bun:"status"`
	// StatusReason is ReasonCode's message (and the provider's code); the
	// provider's own error text is never stored.
	StatusReason string `bun:"status_reason"`
	// ReasonCode is the delivery's stable reason code (delivery.Reason*),
	// "" for none.
	ReasonCode string    `bun:"reason_code"`
	SendAt     time.Time `bun:"send_at"`
	CreatedAt  time.Time `bun:"created_at"`
	UpdatedAt  time.Time `bun:"updated_at"`
	// Attempt is the number of the latest attempt (0 before the first).
	Attempt           int        `bun:"attempt"`
	NextAttemptAt     *time.Time `bun:"next_attempt_at"`
	Provider          string     `bun:"provider"`
	ProviderMessageID string     `bun:"provider_message_id"`
}
