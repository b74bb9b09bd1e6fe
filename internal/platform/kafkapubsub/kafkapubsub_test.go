package kafkapubsub_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rfd-notify/rfd/internal/platform/kafkapubsub"
	"github.com/rfd-notify/rfd/internal/platform/kafkapubsub/kafkatest"
)

const receiveTimeout = 15 * time.Second

func TestPartitionKeyKeepsOrder(t *testing.T) {
	t.Parallel()
	const partitions = 8
	brokers := kafkatest.Start(t, partitions)
	pub, sub := newPubSub(t, testConfig(brokers), "cg-partition-key")
	t.Cleanup(func() { _ = pub.Close(); _ = sub.Close() })
	topic := "orders-" + watermill.NewShortUUID()

	// Interleave the aggregates so that per-key order is not a side effect
	// of publishing each aggregate's messages in one block.
	const aggregates, perAggregate = 6, 40
	published := map[string][]string{}
	for i := range perAggregate {
		for a := range aggregates {
			key := "order-" + strconv.Itoa(a)
			msg := message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, "%s #%d", key, i))
			msg.Metadata.Set(kafkapubsub.PartitionKeyMetadata, key)
			require.NoError(t, pub.Publish(topic, msg))
			published[key] = append(published[key], msg.UUID)
		}
	}
	unkeyed := message.NewMessage(watermill.NewUUID(), []byte("no key"))
	require.NoError(t, pub.Publish(topic, unkeyed))

	msgs, err := sub.Subscribe(context.Background(), topic)
	require.NoError(t, err)

	received := map[string][]string{}
	partitionOf := map[string]int32{}
	for range aggregates*perAggregate + 1 {
		msg := receive(t, msgs, receiveTimeout)
		msg.Ack()

		partition, ok := kafka.MessagePartitionFromCtx(msg.Context())
		require.True(t, ok)
		recordKey, ok := kafka.MessageKeyFromCtx(msg.Context())
		require.True(t, ok)

		key := msg.Metadata.Get(kafkapubsub.PartitionKeyMetadata)
		if key == "" {
			assert.Equal(t, unkeyed.UUID, msg.UUID)
			assert.Equal(t, unkeyed.UUID, string(recordKey), "unkeyed messages are keyed by their UUID")
			continue
		}
		assert.Equal(t, key, string(recordKey))
		if p, seen := partitionOf[key]; seen {
			assert.Equal(t, p, partition, "key %s moved partitions", key)
		}
		partitionOf[key] = partition
		received[key] = append(received[key], msg.UUID)
	}

	for key, ids := range published {
		assert.Equal(t, ids, received[key], "order of %s", key)
	}
	distinct := map[int32]bool{}
	for _, p := range partitionOf {
		distinct[p] = true
	}
	// Otherwise the test would pass without partitioning doing anything.
	assert.Greater(t, len(distinct), 1, "all keys hashed to one partition")
}

// TestExternalCloudEvent simulates another system producing with franz-go:
// CloudEvents binary-mode headers and no watermill UUID header.
func TestExternalCloudEvent(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Start(t, 3)
	topic := "external-" + watermill.NewShortUUID()

	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	require.NoError(t, err)
	t.Cleanup(producer.Close)

	ceHeaders := map[string]string{
		"ce_id":          "evt-1234",
		"ce_type":        "com.example.doctor.registered",
		"ce_source":      "/doctors",
		"ce_time":        "2024-05-01T12:00:00Z",
		"ce_specversion": "1.0",
		"content-type":   "application/json",
	}
	withCE := &kgo.Record{Topic: topic, Key: []byte("doctor-1"), Value: []byte(`{"id":"doctor-1"}`)}
	for k, v := range ceHeaders {
		withCE.Headers = append(withCE.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	anonymous := &kgo.Record{Topic: topic, Key: []byte("doctor-1"), Value: []byte("no id at all")}
	ctx, cancel := context.WithTimeout(context.Background(), receiveTimeout)
	defer cancel()
	require.NoError(t, producer.ProduceSync(ctx, withCE, anonymous).FirstErr())

	// Two groups read the same records: the id of a record without any id
	// header must not depend on who reads it or when.
	var firstAnonymousID string
	for _, group := range []string{"cg-external-a", "cg-external-b"} {
		sub, err := kafkapubsub.NewSubscriber(testConfig(brokers), group, testLogger())
		require.NoError(t, err)
		msgs, err := sub.Subscribe(context.Background(), topic)
		require.NoError(t, err)

		got := receive(t, msgs, receiveTimeout)
		got.Ack()
		assert.Equal(t, "evt-1234", got.UUID, "UUID comes from ce_id")
		for k, v := range ceHeaders {
			assert.Equal(t, v, got.Metadata.Get(k), "header %s kept as metadata", k)
		}
		assert.Equal(t, `{"id":"doctor-1"}`, string(got.Payload))

		got = receive(t, msgs, receiveTimeout)
		got.Ack()
		assert.Equal(t, kafkapubsub.DerivedID(topic, anonymous.Partition, anonymous.Offset), got.UUID)
		if firstAnonymousID == "" {
			firstAnonymousID = got.UUID
		}
		assert.Equal(t, firstAnonymousID, got.UUID)

		require.NoError(t, sub.Close())
	}
}

// TestNackRedeliversSameMessage: a nack must not let the partition move on.
func TestNackRedeliversSameMessage(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Start(t, 1)
	pub, sub := newPubSub(t, testConfig(brokers), "cg-nack")
	t.Cleanup(func() { _ = pub.Close(); _ = sub.Close() })
	topic := "nack-" + watermill.NewShortUUID()

	first := message.NewMessage(watermill.NewUUID(), []byte("1"))
	second := message.NewMessage(watermill.NewUUID(), []byte("2"))
	require.NoError(t, pub.Publish(topic, first, second))

	msgs, err := sub.Subscribe(context.Background(), topic)
	require.NoError(t, err)

	for range 3 {
		got := receive(t, msgs, receiveTimeout)
		require.Equal(t, first.UUID, got.UUID)
		got.Nack()
	}
	got := receive(t, msgs, receiveTimeout)
	require.Equal(t, first.UUID, got.UUID)
	got.Ack()

	got = receive(t, msgs, receiveTimeout)
	require.Equal(t, second.UUID, got.UUID)
	got.Ack()
}

func TestPing(t *testing.T) {
	t.Parallel()

	t.Run("kfake", func(t *testing.T) {
		t.Parallel()
		brokers := kafkatest.Start(t, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, kafkapubsub.Ping(ctx, brokers))
	})

	t.Run("closed port", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err = kafkapubsub.Ping(ctx, []string{addr})
		require.Error(t, err)
		assert.Less(t, time.Since(start), time.Second, "a refused connection must not wait for the deadline")
	})

	t.Run("unresponsive broker", func(t *testing.T) {
		t.Parallel()
		// Accepts connections but never answers, like a hung broker.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = ln.Close() })

		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = kafkapubsub.Ping(ctx, []string{ln.Addr().String()})
		require.Error(t, err)
		assert.Less(t, time.Since(start), 2*time.Second, "Ping must honour the context deadline")
	})

	t.Run("no brokers", func(t *testing.T) {
		t.Parallel()
		require.Error(t, kafkapubsub.Ping(context.Background(), nil))
	})
}

func TestNewSubscriberRequiresGroup(t *testing.T) {
	t.Parallel()
	_, err := kafkapubsub.NewSubscriber(kafkapubsub.Config{Brokers: []string{"127.0.0.1:1"}}, "", testLogger())
	require.Error(t, err)
}

func TestNewPublisherRequiresBrokers(t *testing.T) {
	t.Parallel()
	_, err := kafkapubsub.NewPublisher(kafkapubsub.Config{}, testLogger())
	require.Error(t, err)
}

func TestSubscribeInitializeCreatesTopic(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Start(t, 1)
	cfg := testConfig(brokers)
	cfg.TopicPartitions = 5
	sub, err := kafkapubsub.NewSubscriber(cfg, "cg-init", testLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })

	initializer, ok := sub.(message.SubscribeInitializer)
	require.True(t, ok, "subscriber must create topics on request")
	topic := "init-" + watermill.NewShortUUID()
	require.NoError(t, initializer.SubscribeInitialize(topic))
	require.NoError(t, initializer.SubscribeInitialize(topic), "initializing an existing topic is not an error")

	client, err := sarama.NewClient(brokers, sarama.NewConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	partitions, err := client.Partitions(topic)
	require.NoError(t, err)
	assert.Len(t, partitions, 5)
}

// A static member (InstanceID) does not leave its group when it stops, just
// as a killed process cannot; the next process with its id replaces it and
// gets its partitions at once. After a crash, a new dynamic member would
// wait for the old one's session to expire before the group rebalanced.
func TestStaticMemberIsReplacedOnRestart(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Start(t, 1)
	cfg := testConfig(brokers)
	// Far longer than receiveTimeout: a receive that had to wait out the
	// old member's session would fail.
	cfg.SessionTimeout = 45 * time.Second
	cfg.RebalanceTimeout = 45 * time.Second
	cfg.InstanceID = "rfd-test-" + watermill.NewShortUUID()
	group, topic := "cg-"+watermill.NewShortUUID(), "static-"+watermill.NewShortUUID()

	pub, err := kafkapubsub.NewPublisher(cfg, testLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	members := func() []sarama.GroupMemberDescription {
		admin, err := sarama.NewClusterAdmin(brokers, sarama.NewConfig())
		require.NoError(t, err)
		defer admin.Close()
		groups, err := admin.DescribeConsumerGroups([]string{group})
		require.NoError(t, err)
		require.Len(t, groups, 1)
		var out []sarama.GroupMemberDescription
		for _, m := range groups[0].Members {
			out = append(out, *m)
		}
		return out
	}
	consume := func(want *message.Message) {
		t.Helper()
		require.NoError(t, pub.Publish(topic, want))
		sub, err := kafkapubsub.NewSubscriber(cfg, group, testLogger())
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		msgs, err := sub.Subscribe(ctx, topic)
		require.NoError(t, err)
		// The first message may come again: its offset is committed after
		// the ack, and Close can overtake that (at-least-once).
		deadline := time.Now().Add(receiveTimeout)
		for {
			got := receive(t, msgs, time.Until(deadline))
			got.Ack()
			if got.UUID == want.UUID {
				break
			}
		}
		require.NoError(t, sub.Close())
	}

	consume(message.NewMessage(watermill.NewUUID(), []byte("first")))
	after := members()
	require.Len(t, after, 1, "the static member stays in the group after it stops")
	require.NotNil(t, after[0].GroupInstanceId)
	assert.Equal(t, cfg.InstanceID, *after[0].GroupInstanceId)

	consume(message.NewMessage(watermill.NewUUID(), []byte("second")))
	again := members()
	require.Len(t, again, 1, "the restart replaced the member instead of adding one")
	assert.NotEqual(t, after[0].MemberId, again[0].MemberId)
}
