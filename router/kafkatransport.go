package router

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rfd-notify/rfd/internal/platform/kafkapubsub"
)

// KafkaTransport is the production transport: watermill-kafka over sarama.
type KafkaTransport struct {
	cfg    kafkapubsub.Config
	logger watermill.LoggerAdapter
	pub    message.Publisher
}

// NewKafkaTransport connects a publisher to the brokers of cfg.
func NewKafkaTransport(cfg kafkapubsub.Config, logger watermill.LoggerAdapter) (*KafkaTransport, error) {
	pub, err := kafkapubsub.NewPublisher(cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("kafka transport: %w", err)
	}
	return &KafkaTransport{cfg: cfg, logger: logger, pub: pub}, nil
}

// Name is "kafka".
func (t *KafkaTransport) Name() string { return "kafka" }

// Publisher publishes to Kafka directly.
func (t *KafkaTransport) Publisher() message.Publisher { return t.pub }

// Subscriber returns a consumer-group subscriber.
func (t *KafkaTransport) Subscriber(group string) (message.Subscriber, error) {
	return kafkapubsub.NewSubscriber(t.cfg, group, t.logger)
}

// Ping checks that a broker answers.
func (t *KafkaTransport) Ping(ctx context.Context) error {
	if err := kafkapubsub.Ping(ctx, t.cfg.Brokers); err != nil {
		return fmt.Errorf("kafka transport: %w", err)
	}
	return nil
}

// Close closes the publisher.
func (t *KafkaTransport) Close() error { return t.pub.Close() }
