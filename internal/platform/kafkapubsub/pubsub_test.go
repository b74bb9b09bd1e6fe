package kafkapubsub_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/rfd-notify/rfd/internal/platform/kafkapubsub/kafkatest"
)

// suitePartitions is more than one so that the suite exercises messages of
// one topic spread over several partitions and consumers.
const suitePartitions = 4

// TestPubSub runs watermill's universal Pub/Sub suite against kfake.
func TestPubSub(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Start(t, suitePartitions)
	cfg := testConfig(brokers)

	features := tests.Features{
		ConsumerGroups: true,
		// Offsets are committed after the ack, asynchronously: a rebalance
		// or close can redeliver acked messages.
		ExactlyOnceDelivery: false,
		// Order holds per partition only, and the suite's messages carry
		// no partition key, so they spread over all partitions. Order on
		// one partition is covered by TestPubSubSinglePartitionOrder and
		// per-key order by TestPartitionKeyKeepsOrder.
		GuaranteedOrder: false,
		Persistent:      true,
		// Every constructor call of one test joins the same consumer group
		// (see below), and a new member of a group resumes from the
		// group's committed offsets rather than re-reading old messages.
		// A new group does read old messages: TestConsumerGroups here and
		// TestNewGroupReceivesOldMessages.
		NewSubscriberReceivesOldMessages: false,
		// Full size (up to 10000 messages, 50 subscribers per test) runs
		// in seconds on kfake; go test -short still shrinks it.
		ForceShort: false,
		// TestReconnect is skipped: it needs RestartServiceCommand to
		// restart the broker, and kfake runs in this process.
		RestartServiceCommand: nil,
	}

	tests.TestPubSub(t, features,
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			// One group per test: tests stay independent, and a group
			// whose members subscribe to different topics would rebalance
			// all of them whenever any test adds a subscriber.
			return newPubSub(t, cfg, "cg-"+t.Name())
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			return newPubSub(t, cfg, group)
		},
	)
}

// TestPubSubSinglePartitionOrder runs the suite's order-dependent tests on a
// one-partition topic, where Kafka does guarantee order (and where a
// subscriber gets no next message before it acks the current one).
func TestPubSubSinglePartitionOrder(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Start(t, 1)
	cfg := testConfig(brokers)

	features := tests.Features{
		ConsumerGroups:      true,
		ExactlyOnceDelivery: false,
		GuaranteedOrder:     true,
		Persistent:          true,
	}
	constructor := func(t *testing.T) (message.Publisher, message.Subscriber) {
		return newPubSub(t, cfg, "cg-"+t.Name())
	}

	for name, fn := range map[string]func(*testing.T, tests.TestContext, tests.PubSubConstructor){
		"TestPublishSubscribeInOrder": tests.TestPublishSubscribeInOrder,
		"TestNoAck":                   tests.TestNoAck,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, tests.TestContext{TestID: tests.NewTestID(), Features: features}, constructor)
		})
	}
}

// TestNewGroupReceivesOldMessages runs the suite's test with a fresh consumer
// group per subscriber: a group without committed offsets starts at the
// oldest record (Offsets.Initial = OffsetOldest).
func TestNewGroupReceivesOldMessages(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Start(t, suitePartitions)
	cfg := testConfig(brokers)

	features := tests.Features{
		ConsumerGroups:                   true,
		Persistent:                       true,
		NewSubscriberReceivesOldMessages: true,
	}
	tests.TestNewSubscriberReceivesOldMessages(t,
		tests.TestContext{TestID: tests.NewTestID(), Features: features},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, cfg, "cg-"+watermill.NewShortUUID())
		},
	)
}
