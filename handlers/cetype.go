package handlers

import (
	"regexp"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/msgerr"
)

// typeName matches a ce_type a poison reason may repeat: an identifier in
// the style of CloudEvents types. Anything else is withheld, as a producer
// could put anything in a header.
var typeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$`)

// requireType wraps an inbound consumer's handler: each topic carries one
// CloudEvents type (contracts/asyncapi.yaml), and a message whose ce_type
// header names another is a permanent failure, poisoned before its payload
// is decoded: a payload that happens to pass this topic's schema must not
// be applied as an event of a type it is not. A message without ce_type is
// taken as the topic's type.
func requireType(want, what string, handle func(*message.Message) error) func(*message.Message) error {
	return func(msg *message.Message) error {
		got, ok := msg.Metadata[events.HeaderType]
		if !ok || got == want {
			return handle(msg)
		}
		if !typeName.MatchString(got) {
			got = "(value withheld)"
		}
		return msgerr.Permanentf("%s: %s: unknown event type %q, want %q", what, events.HeaderType, got, want)
	}
}
