package outbox

import (
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/rfd-notify/rfd/logging"
	"github.com/rfd-notify/rfd/sqlpubsub"
)

// ForwarderHandlerName is the name of the forwarder's handler on the router.
const ForwarderHandlerName = "events_forwarder"

// AddForwarder registers the relay from the outbox's forwarder topic to out
// (Kafka) as a handler of wr. It reads the topic in one consumer group, and
// the SQL subscriber locks that group's offset row (FOR UPDATE on
// PostgreSQL, which the Kafka transport requires) while it works, so any
// number of worker replicas can run it: one relays at a time, the others
// take over when it stops. A crash between the Kafka write and the offset
// commit relays that message again with the same message id, which the
// consumers' inbox absorbs.
func AddForwarder(wr *message.Router, ps *sqlpubsub.PubSub, out message.Publisher, forwarderTopic, consumerGroup string, logger *logging.WatermillLogger) error {
	sub, err := ps.Subscriber(consumerGroup)
	if err != nil {
		return fmt.Errorf("forwarder: subscriber: %w", err)
	}
	retry := middleware.Retry{
		MaxRetries:          5,
		InitialInterval:     100 * time.Millisecond,
		MaxInterval:         5 * time.Second,
		Multiplier:          2,
		RandomizationFactor: 0.2,
		Logger:              logger,
	}
	_, err = forwarder.NewForwarder(sub, out, logger, forwarder.Config{
		ForwarderTopic: forwarderTopic,
		Router:         wr,
		// Never poisoned: a message the relay cannot deliver yet is nacked
		// and retried until Kafka takes it.
		Middlewares: []message.HandlerMiddleware{middleware.Recoverer, retry.Middleware},
	})
	if err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	return nil
}
