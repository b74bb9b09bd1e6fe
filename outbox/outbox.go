// Package outbox is the only way the service publishes: messages are written
// inside the caller's database transaction, so they exist if and only if the
// transaction commits. On the SQL transport the write goes straight to the
// destination topic's table; on Kafka it goes to the forwarder topic and the
// forwarder (see Forwarder) relays it to Kafka after the commit.
package outbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/rfd-notify/rfd/internal/platform/kafkapubsub"
	"github.com/rfd-notify/rfd/internal/platform/logging"
	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
	"github.com/rfd-notify/rfd/internal/platform/tracing"
)

// PartitionKeyKey is the metadata key holding a message's aggregate id (a
// doctor or an order). On Kafka it is the record key, so all messages of
// one aggregate stay in order on one partition.
const PartitionKeyKey = kafkapubsub.PartitionKeyMetadata

// Publisher writes messages into a transaction.
type Publisher struct {
	pubsub *sqlpubsub.PubSub
	// forwarderTopic is set on the Kafka transport: messages are enveloped
	// and written to it for the forwarder to relay.
	forwarderTopic string
}

// NewSQL returns the outbox of the SQL transport: messages land directly on
// their topic's table.
func NewSQL(ps *sqlpubsub.PubSub) *Publisher {
	return &Publisher{pubsub: ps}
}

// NewForwarded returns the outbox of the Kafka transport: messages land on
// forwarderTopic, from where the forwarder relays them.
func NewForwarded(ps *sqlpubsub.PubSub, forwarderTopic string) *Publisher {
	return &Publisher{pubsub: ps, forwarderTopic: forwarderTopic}
}

// Publish writes msgs for topic inside tx. Messages without a correlation id
// get the one carried by ctx. Nothing is visible to any consumer unless tx
// commits.
func (p *Publisher) Publish(ctx context.Context, tx bun.Tx, topic string, msgs ...*message.Message) error {
	if tx.Tx == nil {
		return errors.New("outbox: publish needs an open transaction")
	}
	if id := logging.CorrelationID(ctx); id != "" {
		for _, m := range msgs {
			if middleware.MessageCorrelationID(m) == "" {
				middleware.SetCorrelationID(id, m)
			}
		}
	}
	// The messages carry the trace on: their consumers' spans are
	// children of this one (traceparent in metadata, Kafka headers).
	ctx, span := tracing.Tracer().Start(ctx, "outbox publish "+topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.destination.name", topic), attribute.Int("messaging.batch.message_count", len(msgs))))
	defer span.End()
	for _, m := range msgs {
		tracing.Inject(ctx, m)
	}
	pub, err := p.pubsub.TxPublisher(tx.Tx)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if p.forwarderTopic != "" {
		pub = forwarder.NewPublisher(pub, forwarder.PublisherConfig{ForwarderTopic: p.forwarderTopic})
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		return fmt.Errorf("outbox: publish to %s: %w", topic, err)
	}
	return nil
}

// Topics the outbox writes to must exist before a transaction publishes to
// them: creating a table inside a caller's transaction would serialise
// unrelated transactions on the DDL lock. EnsureTopics creates them.
func (p *Publisher) EnsureTopics(ctx context.Context, topics ...string) error {
	if p.forwarderTopic != "" {
		topics = []string{p.forwarderTopic}
	}
	for _, t := range topics {
		if err := p.pubsub.InitializeTopic(ctx, t); err != nil {
			return fmt.Errorf("outbox: initialize topic %s: %w", t, err)
		}
	}
	return nil
}
