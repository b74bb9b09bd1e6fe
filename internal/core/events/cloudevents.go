package events

import "time"

// CloudEvents types (header ce_type) of the message types.
const (
	TypeCheckupEvent      = "rfd.checkup.v1"
	TypeOrderHistoryEvent = "rfd.order-history.v1"
	TypeUserCreated       = "rfd.user-created.v1"
	TypeInternalLogin     = "rfd.internal-login.v1"
	TypeSendNotification  = "rfd.send-notification.v1"
	TypeReportMail        = "rfd.report-mail.v1"
)

// CloudEvents 1.0 attributes as message metadata (Kafka headers), in the
// Kafka protocol binding's binary content mode.
const (
	// HeaderID is the event id; consumers deduplicate on it, so a producer
	// re-sending an event must re-use it.
	HeaderID          = "ce_id"
	HeaderType        = "ce_type"
	HeaderSource      = "ce_source"
	HeaderTime        = "ce_time"
	HeaderSpecVersion = "ce_specversion"

	// SpecVersion is the CloudEvents version of every message.
	SpecVersion = "1.0"
)

// CloudEventMetadata returns the CloudEvents headers of a message: id (the
// deduplication key), type (one of the Type constants), source (the
// producing system) and time, in UTC with nanoseconds (RFC 3339).
func CloudEventMetadata(id, ceType, source string, t time.Time) map[string]string {
	return map[string]string{
		HeaderID:          id,
		HeaderType:        ceType,
		HeaderSource:      source,
		HeaderTime:        t.UTC().Format(time.RFC3339Nano),
		HeaderSpecVersion: SpecVersion,
	}
}
