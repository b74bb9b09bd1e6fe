// Package kafkapubsub is the Kafka transport of the RFD Notify service: a
// watermill publisher and consumer-group subscriber built on watermill-kafka
// (sarama), with the service's own marshaling rules (see Marshaler).
//
// Delivery is at-least-once. A subscriber marks a record's offset only after
// its message is acked and sarama commits marked offsets every second, so a
// crash or rebalance can redeliver recently acked messages; handlers must be
// idempotent (the service's inbox dedupes on the message UUID). A nacked
// message is redelivered to the same subscriber after NackResendSleep and
// blocks its partition until acked: the offset never moves past it.
package kafkapubsub

import (
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

// PartitionKeyMetadata is the metadata key the router and the outbox set to
// the aggregate id (doctor or order id). It becomes the Kafka record key, so
// every message of one aggregate lands on one partition and is consumed in
// publish order.
const PartitionKeyMetadata = "partition_key"

// saramaVersion is the protocol version sarama assumes. 2.8 is the newest
// version sarama documents full protocol coverage for, and every request
// version it implies is served by Kafka 3.x and 4.x (which dropped the
// pre-2.1 ones) and by kfake.
var saramaVersion = sarama.V2_8_0_0

// Config configures publishers and subscribers. Only Brokers is required;
// zero values of the other fields select production defaults, the duration
// fields exist so tests can shorten them.
type Config struct {
	// Brokers are the bootstrap "host:port" addresses.
	Brokers []string
	// ClientID identifies the service in broker logs and quotas.
	// Default "rfd-notify".
	ClientID string

	// TopicPartitions and TopicReplicationFactor are used when a subscriber
	// creates a topic in SubscribeInitialize. Zero asks the broker for its
	// defaults (num.partitions, default.replication.factor). Topics that
	// are auto-created by a publish or subscribe always get the broker's
	// defaults.
	TopicPartitions        int32
	TopicReplicationFactor int16

	// SessionTimeout is how long the group coordinator waits for a silent
	// consumer before reassigning its partitions. Default 10s.
	SessionTimeout time.Duration
	// HeartbeatInterval is also how quickly a member notices that another
	// member joined or left and rejoins. Default 1s.
	HeartbeatInterval time.Duration
	// RebalanceTimeout bounds how long a rebalance waits for members that
	// are still processing a message. Default 60s.
	RebalanceTimeout time.Duration
	// InstanceID, when set, makes every subscriber a static member of its
	// group (KIP-345) under this id. A process restarted with the same id
	// takes its partitions back at once: the group neither waits out the
	// dead member's session nor rebalances. In exchange a static member
	// that stops for good holds its partitions until SessionTimeout, as it
	// does not leave the group on Close. Two live processes must never
	// share an id: the broker fences the older one.
	InstanceID string

	// NackResendSleep is the pause before a nacked message is handed out
	// again; negative means no pause. Default 1s: fast retries belong to
	// the router's retry middleware, a nack here means the handler gave up
	// and hammering the message again helps nobody.
	NackResendSleep time.Duration
	// ReconnectRetrySleep is the pause between attempts to restart a
	// consumer whose group session failed. Default 1s.
	ReconnectRetrySleep time.Duration
}

const (
	defaultClientID            = "rfd-notify"
	defaultSessionTimeout      = 10 * time.Second
	defaultHeartbeatInterval   = time.Second
	defaultRebalanceTimeout    = 60 * time.Second
	defaultNackResendSleep     = time.Second
	defaultReconnectRetrySleep = time.Second
)

func (c Config) withDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = defaultClientID
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = defaultSessionTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = defaultHeartbeatInterval
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = defaultRebalanceTimeout
	}
	if c.NackResendSleep == 0 {
		c.NackResendSleep = defaultNackResendSleep
	}
	if c.NackResendSleep < 0 {
		c.NackResendSleep = kafka.NoSleep
	}
	if c.ReconnectRetrySleep == 0 {
		c.ReconnectRetrySleep = defaultReconnectRetrySleep
	}
	if c.ReconnectRetrySleep < 0 {
		c.ReconnectRetrySleep = kafka.NoSleep
	}
	return c
}

func (c Config) validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("no brokers configured")
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		return fmt.Errorf("heartbeat interval %s must be below session timeout %s", c.HeartbeatInterval, c.SessionTimeout)
	}
	return nil
}

// NewPublisher returns a synchronous publisher: Publish returns once every
// message is acknowledged by all in-sync replicas, which the outbox relies on
// before it deletes a row.
func NewPublisher(cfg Config, logger watermill.LoggerAdapter) (message.Publisher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("kafka publisher: %w", err)
	}
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers:               cfg.Brokers,
		Marshaler:             Marshaler{},
		OverwriteSaramaConfig: publisherSaramaConfig(cfg),
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("kafka publisher: %w", err)
	}
	return pub, nil
}

// NewSubscriber returns a subscriber in consumerGroup. A group that has no
// committed offset for a partition starts at its oldest record, so events
// published before the service's first start are not lost.
//
// The returned subscriber also implements message.SubscribeInitializer,
// creating the topic with TopicPartitions/TopicReplicationFactor.
func NewSubscriber(cfg Config, consumerGroup string, logger watermill.LoggerAdapter) (message.Subscriber, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("kafka subscriber: %w", err)
	}
	// Without a group watermill-kafka reads every partition from
	// Offsets.Initial on every start and commits nothing: the service
	// would reprocess its whole history on each restart.
	if consumerGroup == "" {
		return nil, errors.New("kafka subscriber: consumer group is required")
	}
	partitions := cfg.TopicPartitions
	if partitions == 0 {
		partitions = -1
	}
	replication := cfg.TopicReplicationFactor
	if replication == 0 {
		replication = -1
	}
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               cfg.Brokers,
		Unmarshaler:           Marshaler{},
		OverwriteSaramaConfig: subscriberSaramaConfig(cfg),
		ConsumerGroup:         consumerGroup,
		NackResendSleep:       cfg.NackResendSleep,
		ReconnectRetrySleep:   cfg.ReconnectRetrySleep,
		InitializeTopicDetails: &sarama.TopicDetail{
			NumPartitions:     partitions,
			ReplicationFactor: replication,
		},
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("kafka subscriber (group %s): %w", consumerGroup, err)
	}
	return sub, nil
}

func baseSaramaConfig(cfg Config) *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = saramaVersion
	sc.ClientID = cfg.ClientID
	// The sarama default of 30s would make a dead broker stall Publish and
	// consumer restarts for half a minute per attempt.
	sc.Net.DialTimeout = 10 * time.Second
	return sc
}

func publisherSaramaConfig(cfg Config) *sarama.Config {
	sc := baseSaramaConfig(cfg)
	sc.Producer.Return.Successes = true // required by sarama's SyncProducer
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Retry.Max = 10
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	// One request in flight per broker, so a retried batch cannot overtake
	// a later one and break per-key order.
	sc.Net.MaxOpenRequests = 1
	return sc
}

func subscriberSaramaConfig(cfg Config) *sarama.Config {
	sc := baseSaramaConfig(cfg)
	sc.Consumer.Return.Errors = true // watermill-kafka logs them
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = time.Second
	sc.Consumer.Group.Session.Timeout = cfg.SessionTimeout
	sc.Consumer.Group.Heartbeat.Interval = cfg.HeartbeatInterval
	sc.Consumer.Group.Rebalance.Timeout = cfg.RebalanceTimeout
	sc.Consumer.Group.InstanceId = cfg.InstanceID
	// The default 2s between join attempts dominates how long a new
	// subscriber waits when several members join at once.
	sc.Consumer.Group.Rebalance.Retry.Backoff = 250 * time.Millisecond
	sc.Consumer.Group.Rebalance.Retry.Max = 10
	// SubscribeInitialize's CreateTopics waits this long for the controller.
	sc.Admin.Timeout = 30 * time.Second
	return sc
}
