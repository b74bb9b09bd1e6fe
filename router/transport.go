package router

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Transport is the message broker as the router sees it: the SQL transport
// (topics are tables in the service's own database) or Kafka.
type Transport interface {
	// Name is "sql" or "kafka".
	Name() string
	// Publisher publishes straight to the broker, outside any transaction.
	// Only the router's poison queue and the outbox forwarder use it;
	// everything else publishes through the outbox.
	Publisher() message.Publisher
	// Subscriber returns a subscriber in the given consumer group.
	Subscriber(consumerGroup string) (message.Subscriber, error)
	// Ping checks that the broker is reachable.
	Ping(ctx context.Context) error
	// Close releases the transport's connections.
	Close() error
}
