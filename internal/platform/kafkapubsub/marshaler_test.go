package kafkapubsub_test

import (
	"testing"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rfd-notify/rfd/internal/platform/kafkapubsub"
)

func TestMarshalerRoundTrip(t *testing.T) {
	msg := message.NewMessage("8f1b7c1e-0000-4000-8000-000000000001", []byte("payload"))
	msg.Metadata.Set(kafkapubsub.PartitionKeyMetadata, "doctor-42")
	msg.Metadata.Set("b", "2")
	msg.Metadata.Set("a", "1")

	var m kafkapubsub.Marshaler
	rec, err := m.Marshal("topic", msg)
	require.NoError(t, err)
	assert.Equal(t, "topic", rec.Topic)
	assert.Equal(t, sarama.StringEncoder("doctor-42"), rec.Key)

	headerKeys := make([]string, 0, len(rec.Headers))
	for _, h := range rec.Headers {
		headerKeys = append(headerKeys, string(h.Key))
	}
	assert.Equal(t, []string{kafkapubsub.UUIDHeader, "a", "b", kafkapubsub.PartitionKeyMetadata}, headerKeys)

	got, err := m.Unmarshal(consumed(rec, 3, 17))
	require.NoError(t, err)
	assert.Equal(t, msg.UUID, got.UUID)
	assert.Equal(t, msg.Metadata, got.Metadata)
	assert.Equal(t, msg.Payload, got.Payload)
}

func TestMarshalerKeyFallsBackToUUID(t *testing.T) {
	msg := message.NewMessage("8f1b7c1e-0000-4000-8000-000000000002", nil)
	rec, err := kafkapubsub.Marshaler{}.Marshal("topic", msg)
	require.NoError(t, err)
	assert.Equal(t, sarama.StringEncoder(msg.UUID), rec.Key)
}

func TestMarshalerRejectsReservedMetadata(t *testing.T) {
	msg := message.NewMessage("id", nil)
	msg.Metadata.Set(kafkapubsub.UUIDHeader, "other")
	_, err := kafkapubsub.Marshaler{}.Marshal("topic", msg)
	require.Error(t, err)
}

func TestUnmarshalID(t *testing.T) {
	var m kafkapubsub.Marshaler
	header := func(k, v string) *sarama.RecordHeader {
		return &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)}
	}

	t.Run("watermill uuid wins over ce_id", func(t *testing.T) {
		got, err := m.Unmarshal(&sarama.ConsumerMessage{Topic: "t", Headers: []*sarama.RecordHeader{
			header("ce_id", "evt-1"), header(kafkapubsub.UUIDHeader, "wm-1"),
		}})
		require.NoError(t, err)
		assert.Equal(t, "wm-1", got.UUID)
		assert.Equal(t, "evt-1", got.Metadata.Get("ce_id"))
		assert.Empty(t, got.Metadata.Get(kafkapubsub.UUIDHeader))
	})

	t.Run("ce_id without watermill uuid", func(t *testing.T) {
		got, err := m.Unmarshal(&sarama.ConsumerMessage{Topic: "t", Headers: []*sarama.RecordHeader{
			header("ce_id", "evt-2"), header("ce_type", "x"),
		}})
		require.NoError(t, err)
		assert.Equal(t, "evt-2", got.UUID)
		assert.Equal(t, message.Metadata{"ce_id": "evt-2", "ce_type": "x"}, got.Metadata)
	})

	t.Run("no id header", func(t *testing.T) {
		rec := &sarama.ConsumerMessage{Topic: "t", Partition: 2, Offset: 99}
		a, err := m.Unmarshal(rec)
		require.NoError(t, err)
		b, err := m.Unmarshal(rec)
		require.NoError(t, err)
		assert.Equal(t, a.UUID, b.UUID, "same record, same id")
		assert.Equal(t, kafkapubsub.DerivedID("t", 2, 99), a.UUID)
		assert.NotEqual(t, kafkapubsub.DerivedID("t", 2, 100), a.UUID)
		assert.NotEqual(t, kafkapubsub.DerivedID("t", 3, 99), a.UUID)
		assert.NotEqual(t, kafkapubsub.DerivedID("u", 2, 99), a.UUID)
	})
}

// consumed turns a produced record into the record a consumer would see.
func consumed(rec *sarama.ProducerMessage, partition int32, offset int64) *sarama.ConsumerMessage {
	value, _ := rec.Value.Encode()
	headers := make([]*sarama.RecordHeader, len(rec.Headers))
	for i := range rec.Headers {
		headers[i] = &rec.Headers[i]
	}
	return &sarama.ConsumerMessage{
		Topic:     rec.Topic,
		Partition: partition,
		Offset:    offset,
		Value:     value,
		Headers:   headers,
	}
}
