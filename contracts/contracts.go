// Package contracts holds the message contracts of RFD Notify: one JSON
// Schema (draft 2020-12) and one example per message type, and the AsyncAPI
// document describing the topics. They live here as files, not Go code, so
// that the teams producing the events can read and test against the very
// same documents the service validates with; FS embeds them into the binary.
package contracts

import "embed"

// FS holds every schema, example, asyncapi.yaml and README.md of this
// directory, by file name (no directory prefix).
//
//go:embed *.schema.json *.example.json asyncapi.yaml README.md
var FS embed.FS

// File names in FS.
const (
	AsyncAPI = "asyncapi.yaml"

	CheckupEventSchema       = "checkup-event.schema.json"
	CheckupEventExample      = "checkup-event.example.json"
	OrderHistoryEventSchema  = "order-history-event.schema.json"
	OrderHistoryEventExample = "order-history-event.example.json"
	UserCreatedSchema        = "user-created.schema.json"
	UserCreatedExample       = "user-created.example.json"
	InternalLoginSchema      = "internal-login.schema.json"
	InternalLoginExample     = "internal-login.example.json"
	SendNotificationSchema   = "send-notification.schema.json"
	SendNotificationExample  = "send-notification.example.json"
	ReportMailSchema         = "report-mail.schema.json"
	ReportMailExample        = "report-mail.example.json"
)
