// Package handlers holds the service's consumers, one file each. Every
// consumer does its work in one transaction through the inbox and publishes
// follow-up messages through the outbox in that same transaction.
package handlers

import (
	"github.com/rfd-notify/rfd/config"
	"github.com/rfd-notify/rfd/outbox"
	"github.com/rfd-notify/rfd/router"
	"github.com/rfd-notify/rfd/store"
)

// Deps are what consumers are built from.
type Deps struct {
	Config config.Config
	Inbox  *store.Inbox
	Outbox *outbox.Publisher
}

// Set maps a consumer name to its router handler.
type Set map[string]router.Handler

// Consumers returns the consumers this build implements, by name. A name of
// config.Consumers missing here has no handler yet: `rfd consume NAME`
// refuses to start rather than consume and drop its topic.
func Consumers(d Deps) Set {
	return Set{}
}
