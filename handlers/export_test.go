package handlers

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rfd-notify/rfd/events"
)

// ProcessTogether runs msgs through the checkup-events consumer as one
// batch (one transaction), as if they had all been in hand at once.
func (h *CheckupEvents) ProcessTogether(ctx context.Context, msgs []*message.Message) error {
	items := make([]checkupItem, len(msgs))
	for i, m := range msgs {
		ev, err := events.DecodeCheckupEvent(m.Payload)
		if err != nil {
			return err
		}
		items[i] = checkupItem{id: m.UUID, ev: ev}
	}
	return h.process(ctx, items)
}
