package domain

import (
	"sync"
	"time"

	"github.com/uptrace/bun"
)

// Doctor is a referring doctor, registered from user management. It is
// stored as store.Doctor.
type Doctor struct {
	ID              string    `json:"id"`
	ExternalUserID  string    `json:"external_user_id"`
	Name            string    `json:"name"`
	LicenceNumber   string    `json:"licence_number"`
	Specialty       string    `json:"specialty"`
	Clinic          string    `json:"clinic"`
	Email           string    `json:"email"`
	Phone           string    `json:"phone"`
	Locale          string    `json:"locale"`
	TimeZone        string    `json:"time_zone"`
	Active          bool      `json:"active"`
	NotificationSeq int64     `json:"-"`
	ProfileVersion  time.Time `json:"-"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// Location is the doctor's time zone, UTC if it does not load.
func (d Doctor) Location() *time.Location {
	if loc, ok := locations.Load(d.TimeZone); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(d.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	locations.Store(d.TimeZone, loc)
	return loc
}

// locations caches loaded time zones: time.LoadLocation reads the zone
// database from disk on every call, and every notification needs one.
var locations sync.Map

// Notification is one notification to one doctor.
type Notification struct {
	bun.BaseModel `bun:"table:notifications"`

	ID             string         `bun:"id,pk"`
	DoctorID       string         `bun:"doctor_id"`
	Seq            int64          `bun:"seq"`
	DedupKey       string         `bun:"dedup_key"`
	Type           string         `bun:"type"`
	Category       Category       `bun:"category"`
	Priority       Priority       `bun:"priority"`
	Title          string         `bun:"title"`
	Body           string         `bun:"body"`
	Data           map[string]any `bun:"data,type:json"`
	CheckupID      *string        `bun:"checkup_id"`
	ResultVersion  *int           `bun:"result_version"`
	OrderID        *string        `bun:"order_id"`
	SourceEventID  string         `bun:"source_event_id"`
	OnBehalfOf     *string        `bun:"on_behalf_of"`
	State          string         `bun:"state"`
	StateReason    string         `bun:"state_reason"`
	SupersededBy   *string        `bun:"superseded_by"`
	SendAt         time.Time      `bun:"send_at"`
	ExpiresAt      *time.Time     `bun:"expires_at"`
	CreatedAt      time.Time      `bun:"created_at"`
	ReadAt         *time.Time     `bun:"read_at"`
	AcknowledgedAt *time.Time     `bun:"acknowledged_at"`
	AcknowledgedBy *string        `bun:"acknowledged_by"`
	AckNote        *string        `bun:"ack_note"`
}

// Delivery is one notification on one channel.
type Delivery struct {
	bun.BaseModel `bun:"table:deliveries"`

	ID             string  `bun:"id,pk"`
	NotificationID string  `bun:"notification_id"`
	Channel        Channel `bun:"channel"`
	Status         string  `bun:"status"`
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
