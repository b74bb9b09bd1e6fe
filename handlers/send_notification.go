package handlers

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rfd-notify/rfd/internal/delivery"
)

// SendNotification delivers one notification on one channel. The work is
// the delivery package's: re-check, call the provider outside any
// transaction, then record the attempt and the status through the inbox in
// one transaction (see delivery.Dispatcher).
type SendNotification struct {
	dispatcher *delivery.Dispatcher
}

// NewSendNotification returns the consumer.
func NewSendNotification(d Deps) *SendNotification {
	return &SendNotification{dispatcher: d.Dispatcher}
}

// Handle processes one message.
func (h *SendNotification) Handle(msg *message.Message) error {
	return h.dispatcher.Handle(msg)
}
