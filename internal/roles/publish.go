package roles

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/google/wire"

	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/jobs/poison"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/migrations"
	"github.com/rfd-notify/rfd/outbox"
)

// PublishSet provides the publish command.
var PublishSet = wire.NewSet(NewLogger, OpenExistingDB, NewMigrator, NewSQLPubSub, NewOutbox, NewPoison, NewEventPublisher)

// eventTypes are the CloudEvents types of the consumers' topics
// (contracts/asyncapi.yaml).
var eventTypes = map[string]string{
	config.ConsumerCheckupEvents:      events.TypeCheckupEvent,
	config.ConsumerOrderHistoryEvents: events.TypeOrderHistoryEvent,
	config.ConsumerSendNotification:   events.TypeSendNotification,
	config.ConsumerUserCreated:        events.TypeUserCreated,
	config.ConsumerInternalLogin:      events.TypeInternalLogin,
}

// PublishTopics are the topics `rfd publish` writes to: the consumers'
// topics, as configured, in the order of config.Consumers.
func PublishTopics(cfg config.Config) []string {
	out := make([]string, 0, len(config.Consumers))
	for _, c := range config.Consumers {
		out = append(out, cfg.TopicOf(c))
	}
	return out
}

// ErrUnknownTopic is returned for a topic no consumer reads.
type ErrUnknownTopic struct {
	Topic string
	Valid []string
}

func (e ErrUnknownTopic) Error() string {
	return fmt.Sprintf("unknown topic %q; valid topics: %s", e.Topic, strings.Join(e.Valid, ", "))
}

// EventTypeOf is the CloudEvents type a consumer's topic carries; an error
// of type ErrUnknownTopic for any other topic.
func EventTypeOf(cfg config.Config, topic string) (string, error) {
	for _, c := range config.Consumers {
		if cfg.TopicOf(c) == topic {
			return eventTypes[c], nil
		}
	}
	return "", ErrUnknownTopic{Topic: topic, Valid: PublishTopics(cfg)}
}

// MaxPublishBytes bounds a published payload: Kafka's default message size
// limit (message.max.bytes) is about 1 MB.
const MaxPublishBytes = 1 << 20

// maxAttribute bounds --id, --ce-type and --key, as the API bounds ce-id.
const maxAttribute = 200

// PublishRequest is one message for `rfd publish`.
type PublishRequest struct {
	Topic   string
	Payload []byte
	// ID is the CloudEvents id and the message id, the consumers'
	// deduplication key; empty means a new UUID.
	ID string
	// Type is ce_type; empty means the topic's type.
	Type string
	// Key is the partition key (the Kafka record key); empty means none.
	Key string
	// File names where the payload came from, for the audit log.
	File string
}

// Published says what was published.
type Published struct {
	ID, Type, Source, Topic string
	Bytes                   int
}

// EventPublisher is `rfd publish`: it publishes an operator's payload, as
// it is, to a consumer's topic through the outbox of the configured
// transport, with CloudEvents metadata naming the operator, and audits it.
type EventPublisher struct {
	cfg config.Config
	svc *poison.Service
	now func() time.Time
}

// NewEventPublisher returns the publisher once the schema is current (a
// message published to a database no server migrated would reach no
// consumer) and the topic tables the outbox writes to exist.
func NewEventPublisher(ctx context.Context, cfg config.Config, m *migrations.Migrator, ob *outbox.Publisher, svc *poison.Service) (*EventPublisher, error) {
	if _, err := currentSchema(ctx, m, false, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	if err := ob.EnsureTopics(ctx, OutboxTopics(cfg)...); err != nil {
		return nil, err
	}
	return &EventPublisher{cfg: cfg, svc: svc, now: time.Now}, nil
}

// Validate checks a request's topic and attributes, not its payload.
func (r PublishRequest) Validate(cfg config.Config) error {
	if _, err := EventTypeOf(cfg, r.Topic); err != nil {
		return err
	}
	for _, a := range []struct{ name, v string }{{"--id", r.ID}, {"--ce-type", r.Type}, {"--key", r.Key}} {
		if len(a.v) > maxAttribute {
			return fmt.Errorf("%s: at most %d bytes", a.name, maxAttribute)
		}
		if strings.IndexFunc(a.v, func(c rune) bool { return c < 0x20 || c == 0x7f }) >= 0 {
			return fmt.Errorf("%s: control characters are not allowed", a.name)
		}
	}
	return nil
}

// Publish publishes req as actor, in one transaction with its audit row.
// The payload is not validated: the topic's consumer decodes it as it
// would a producer's, and poisons what it cannot use.
func (p *EventPublisher) Publish(ctx context.Context, actor poison.Actor, req PublishRequest) (Published, error) {
	if err := req.Validate(p.cfg); err != nil {
		return Published{}, err
	}
	if len(req.Payload) > MaxPublishBytes {
		return Published{}, fmt.Errorf("publish: the payload is %d bytes, more than %d", len(req.Payload), MaxPublishBytes)
	}
	ceType, _ := EventTypeOf(p.cfg, req.Topic)
	if req.Type != "" {
		ceType = req.Type
	}
	id := req.ID
	if id == "" {
		id = uuid.NewString()
	}
	source := "/rfd-notify/cli/" + actor.ID
	// The message id is the event id, as a Kafka producer's ce_id becomes
	// it: the consumers' inbox deduplicates on it, so publishing the same
	// --id twice acts once.
	msg := message.NewMessage(id, append([]byte(nil), req.Payload...))
	for k, v := range events.CloudEventMetadata(id, ceType, source, p.now()) {
		msg.Metadata.Set(k, v)
	}
	if req.Key != "" {
		msg.Metadata.Set(outbox.PartitionKeyKey, req.Key)
	}
	// The audit row identifies the payload by its digest; the payload
	// itself may hold patient data.
	sum := sha256.Sum256(req.Payload)
	detail := map[string]any{
		"topic": req.Topic, "ce_type": ceType, "ce_source": source, "bytes": len(req.Payload),
		"sha256": hex.EncodeToString(sum[:]), "partition_key": req.Key, "file": req.File,
	}
	if err := p.svc.Publish(ctx, actor, req.Topic, msg, detail); err != nil {
		return Published{}, err
	}
	return Published{ID: id, Type: ceType, Source: source, Topic: req.Topic, Bytes: len(req.Payload)}, nil
}
