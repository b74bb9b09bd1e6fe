package poison

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/store"
)

// Publish writes msg, which an operator supplied, to topic through the
// outbox and audits it as event.publish (object: the topic and the
// message id), in one transaction: it is a replay of a message that was
// never poisoned, e.g. one re-injected from an export. The payload is not
// validated: it reaches the topic's consumer exactly as a producer's would.
func (s *Service) Publish(ctx context.Context, actor Actor, topic string, msg *message.Message, detail map[string]any) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := s.outbox.Publish(ctx, tx, topic, msg); err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
		return s.auditObject(ctx, store.NewQueries(tx), actor, "event.publish", topic, msg.UUID, detail)
	})
}
