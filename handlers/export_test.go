package handlers

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/events"
)

// ProcessTogether runs msgs through the checkup-events consumer as one
// batch (one transaction), as if they had all been in hand at once.
func (h *CheckupEvents) ProcessTogether(ctx context.Context, msgs []*message.Message) error {
	items, err := checkupItems(msgs)
	if err != nil {
		return err
	}
	return h.process(ctx, items)
}

// WorkInTx does the work of msgs, as one batch, in tx (without the inbox),
// leaving the caller to commit it.
func (h *CheckupEvents) WorkInTx(ctx context.Context, tx bun.Tx, msgs []*message.Message) error {
	items, err := checkupItems(msgs)
	if err != nil {
		return err
	}
	return h.work(ctx, tx, items)
}

func checkupItems(msgs []*message.Message) ([]checkupItem, error) {
	items := make([]checkupItem, len(msgs))
	for i, m := range msgs {
		ev, err := events.DecodeCheckupEvent(m.Payload)
		if err != nil {
			return nil, err
		}
		items[i] = checkupItem{id: m.UUID, ev: ev}
	}
	return items, nil
}

// ApplyInTx does the work of the user-created message msg in tx (without
// the inbox), leaving the caller to commit it.
func (h *UserCreated) ApplyInTx(ctx context.Context, tx bun.Tx, msg *message.Message) error {
	ev, err := events.DecodeUserCreated(msg.Payload)
	if err != nil {
		return err
	}
	return h.apply(ctx, tx, msg.UUID, ev)
}
