// Package handlers holds the service's consumers, one file each. Every
// consumer decodes its message (an undecodable or invalid one is a permanent
// failure: the router poisons it), then does all of its work in one
// transaction through the inbox, publishing follow-up messages through the
// outbox in that same transaction.
package handlers

import (
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/delivery"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/outbox"
	"github.com/rfd-notify/rfd/router"
)

// Deps are what consumers are built from.
type Deps struct {
	Config   config.Config
	Inbox    *store.Inbox
	Outbox   *outbox.Publisher
	Notifier *notify.Notifier
	// Dispatcher delivers send-notification commands; without one the
	// send-notification consumer is not built.
	Dispatcher *delivery.Dispatcher
	// Now is the clock; tests control it.
	Now func() time.Time
	// Registerer receives the consumers' own metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Set maps a consumer name to its router handler.
type Set map[string]router.Handler

// Consumers returns the consumers this build implements, by name. A name of
// config.Consumers missing here has no handler yet: `rfd consume NAME`
// refuses to start rather than consume and drop its topic.
func Consumers(d Deps) Set {
	if d.Now == nil {
		d.Now = time.Now
	}
	set := Set{}
	add := func(name string, handle func(*message.Message) error) {
		set[name] = router.Handler{
			Name:          name,
			Topic:         d.Config.TopicOf(name),
			ConsumerGroup: d.Config.ConsumerGroup(name),
			Handle:        handle,
		}
	}
	add(config.ConsumerCheckupEvents, requireType(events.TypeCheckupEvent, "checkup event", NewCheckupEvents(d).Handle))
	add(config.ConsumerOrderHistoryEvents, requireType(events.TypeOrderHistoryEvent, "order history event", NewOrderHistoryEvents(d).Handle))
	add(config.ConsumerUserCreated, requireType(events.TypeUserCreated, "user created event", NewUserCreated(d).Handle))
	add(config.ConsumerInternalLogin, requireType(events.TypeInternalLogin, "internal login event", NewInternalLogin(d).Handle))
	if d.Dispatcher != nil {
		add(config.ConsumerSendNotification, NewSendNotification(d).Handle)
	}
	return set
}
