// Package events holds the Go side of the message contracts in
// package contracts: one type per payload, a decoder that accepts a payload
// only if it is JSON, valid against its embedded JSON Schema and free of
// unknown fields, and an encoder that refuses to produce a payload its own
// schema would reject.
//
// Enum fields are plain strings, compared with the untyped constants below,
// so callers can pass them to SQL and templates without conversions.
// Decoded times are in UTC: events carry instants, and one zone keeps
// comparisons and stored timestamps uniform.
package events

import "time"

// Checkup event types (CheckupEvent.EventType).
const (
	CheckupScheduled       = "checkup_scheduled"
	CheckupCompleted       = "checkup_completed"
	CheckupResultAvailable = "result_available"
	CheckupCriticalResult  = "critical_result"
	CheckupCancelled       = "checkup_cancelled"
)

// Roles of a referring doctor on a checkup (ReferringDoctor.Role).
const (
	RolePrimary = "primary"
	RoleCopy    = "copy"
)

// Result statuses (Result.Status).
const (
	ResultPreliminary    = "preliminary"
	ResultFinal          = "final"
	ResultCorrected      = "corrected"
	ResultCancelled      = "cancelled"
	ResultEnteredInError = "entered_in_error"
)

// Test flags (Test.Flag).
const (
	FlagNormal       = "N"
	FlagHigh         = "H"
	FlagLow          = "L"
	FlagCriticalHigh = "HH"
	FlagCriticalLow  = "LL"
	FlagAbnormal     = "A"
)

// Order statuses (OrderHistoryEvent.Status).
const (
	OrderPlaced          = "placed"
	OrderScheduled       = "scheduled"
	OrderSampleCollected = "sample_collected"
	OrderInProgress      = "in_progress"
	OrderCompleted       = "completed"
	OrderCancelled       = "cancelled"
)

// User types (UserCreated.UserType).
const (
	UserTypeReferringDoctor = "referring_doctor"
	UserTypeStaff           = "staff"
	UserTypeAdmin           = "admin"
)

// Locales (UserCreated.Locale).
const (
	LocaleEnglish = "en"
	LocaleThai    = "th"
)

// Login outcomes (InternalLogin.Outcome).
const (
	LoginSuccess = "success"
	LoginFailure = "failure"
)

// Login methods (InternalLogin.Method).
const (
	LoginPassword = "password"
	LoginSSO      = "sso"
	LoginOTP      = "otp"
	LoginPasskey  = "passkey"
)

// Delivery channels (SendNotification.Channel).
const (
	ChannelInApp   = "in_app"
	ChannelEmail   = "email"
	ChannelSMS     = "sms"
	ChannelPush    = "push"
	ChannelWebhook = "webhook"
)

// Notification categories (SendNotification.Category).
const (
	CategoryResults         = "results"
	CategoryCriticalResults = "critical_results"
	CategoryOrders          = "orders"
	CategorySecurity        = "security"
	CategoryAnnouncements   = "announcements"
)

// Notification priorities (SendNotification.Priority).
const (
	PriorityNormal   = "normal"
	PriorityHigh     = "high"
	PriorityCritical = "critical"
)

// Optional fields are tagged omitzero (pointers omitempty: left out only
// when nil): absent and zero decode to the same Go value and a zero value is
// left out on encoding, so a decoded event re-encodes to a payload that
// decodes to the same value. (omitzero, unlike omitempty, keeps an empty but
// non-nil slice as [].)

// CheckupEvent is the payload of topic checkup-events.
type CheckupEvent struct {
	EventType        string            `json:"event_type"`
	CheckupID        string            `json:"checkup_id"`
	OrderID          string            `json:"order_id,omitzero"`
	Patient          Patient           `json:"patient"`
	ReferringDoctors []ReferringDoctor `json:"referring_doctors"`
	OccurredAt       time.Time         `json:"occurred_at"`
	// ScheduledAt is nil when the event does not say. (omitempty, not
	// omitzero: omitzero would call time.Time.IsZero through the pointer and
	// drop a present-but-zero time, so it would not survive a round trip.)
	ScheduledAt *time.Time `json:"scheduled_at,omitempty"`
	// Result is set for result_available and critical_result (the schema
	// requires it there) and may be set for other event types.
	Result       *Result `json:"result,omitempty"`
	CancelReason string  `json:"cancel_reason,omitzero"`
}

// Patient identifies the patient of a checkup. DisplayName is patient data:
// it may reach only authenticated views, never logs or SMS/push/email bodies.
type Patient struct {
	Ref         string `json:"ref"`
	DisplayName string `json:"display_name,omitzero"`
	BirthYear   int    `json:"birth_year,omitzero"`
}

// ReferringDoctor is a doctor to notify about a checkup.
type ReferringDoctor struct {
	ExternalUserID string `json:"external_user_id"`
	// Role is RolePrimary, RoleCopy or "" (not said).
	Role string `json:"role,omitzero"`
}

// Result is one version of a checkup's result.
type Result struct {
	Version  int    `json:"version"`
	Status   string `json:"status"`
	Critical bool   `json:"critical,omitzero"`
	Tests    []Test `json:"tests,omitzero"`
	Summary  string `json:"summary,omitzero"`
}

// Test is one test of a result. Value is text as reported ("5.4",
// "Negative"), so no precision is lost.
type Test struct {
	Code  string `json:"code"`
	Name  string `json:"name"`
	Value string `json:"value"`
	Unit  string `json:"unit,omitzero"`
	Flag  string `json:"flag,omitzero"`
}

// OrderHistoryEvent is the payload of topic order-history-events. Sequence
// orders the events of one order: a consumer applies an event only when its
// sequence is higher than the last applied, so a late event never regresses
// the order's state.
type OrderHistoryEvent struct {
	OrderID          string        `json:"order_id"`
	Sequence         int64         `json:"sequence"`
	Status           string        `json:"status"`
	OccurredAt       time.Time     `json:"occurred_at"`
	Patient          OrderPatient  `json:"patient"`
	ReferringDoctors []OrderDoctor `json:"referring_doctors"`
	Description      string        `json:"description,omitzero"`
	CancelReason     string        `json:"cancel_reason,omitzero"`
}

// OrderPatient identifies the patient of an order.
type OrderPatient struct {
	Ref string `json:"ref"`
}

// OrderDoctor is a doctor to notify about an order.
type OrderDoctor struct {
	ExternalUserID string `json:"external_user_id"`
}

// UserCreated is the payload of topic user-created.
type UserCreated struct {
	ExternalUserID string  `json:"external_user_id"`
	UserType       string  `json:"user_type"`
	Name           string  `json:"name"`
	LicenceNumber  string  `json:"licence_number,omitzero"`
	Specialty      string  `json:"specialty,omitzero"`
	Clinic         *Clinic `json:"clinic,omitempty"`
	Email          string  `json:"email,omitzero"`
	Phone          string  `json:"phone,omitzero"`
	Locale         string  `json:"locale,omitzero"`
	TimeZone       string  `json:"time_zone,omitzero"`
	// Active is a pointer because absent means true (the schema's default),
	// which a plain bool could not tell from false. See IsActive.
	Active    *bool     `json:"active,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// IsActive reports whether the user is active; absent means active.
func (u UserCreated) IsActive() bool {
	return u.Active == nil || *u.Active
}

// Clinic is where a doctor practises.
type Clinic struct {
	ID   string `json:"id,omitzero"`
	Name string `json:"name,omitzero"`
}

// InternalLogin is the payload of topic internal-login.
type InternalLogin struct {
	ExternalUserID string    `json:"external_user_id"`
	Outcome        string    `json:"outcome"`
	OccurredAt     time.Time `json:"occurred_at"`
	// SourceIP is an IPv4 or IPv6 address in text form.
	SourceIP  string `json:"source_ip"`
	UserAgent string `json:"user_agent,omitzero"`
	Method    string `json:"method"`
	DeviceID  string `json:"device_id,omitzero"`
}

// SendNotification is the payload of topic send-notification: the command
// to deliver one notification over one channel. It carries ids only; the
// delivery consumer reads the content from the database, so no patient data
// travels on the topic.
type SendNotification struct {
	DeliveryID     string `json:"delivery_id"`
	NotificationID string `json:"notification_id"`
	// DoctorID is the service's doctor id, not the user-management id.
	DoctorID string `json:"doctor_id"`
	Channel  string `json:"channel"`
	Category string `json:"category"`
	Priority string `json:"priority"`
	// Type is the notification type, e.g. "result_available".
	Type string `json:"type"`
	// SendAt is the earliest time to send (quiet hours, digests).
	SendAt time.Time `json:"send_at"`
	// Attempt is the delivery attempt; 0 (absent) means the first.
	Attempt int `json:"attempt,omitzero"`
}

// ReportMail is the payload of topic rfd-report-mail: the command to e-mail
// one stored operations report. It carries the report's id only.
type ReportMail struct {
	ReportMailID string `json:"report_mail_id"`
}
