package kafkapubsub

import (
	"fmt"
	"sort"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
)

// UUIDHeader is the Kafka header carrying the watermill message UUID; it is
// watermill-kafka's, so records stay readable by any watermill-kafka consumer.
const UUIDHeader = kafka.UUIDHeaderKey

// CloudEventsIDHeader is the header (CloudEvents Kafka binding, binary mode)
// that carries the event id of records produced by other systems.
const CloudEventsIDHeader = "ce_id"

// derivedIDNamespace namespaces the name-based UUIDs of records that carry
// neither a watermill UUID nor a CloudEvents id.
var derivedIDNamespace = uuid.MustParse("5b0d5c0e-4c1e-4d7e-9a57-2f1f3e0f8b6a")

// Marshaler converts between watermill messages and Kafka records.
//
// Outbound: the message UUID goes to the UUIDHeader header and every metadata
// entry to a header of the same name. The record key is the metadata value
// PartitionKeyMetadata; a message without one is keyed by its own UUID, so it
// lands on a hash-chosen but stable partition (republishing the same message,
// as the outbox does after a crash, hits the same partition).
//
// Inbound: every header except UUIDHeader becomes metadata, unchanged. The
// message UUID is, in order of preference:
//   - the UUIDHeader header (our own and other watermill publishers);
//   - the ce_id header (CloudEvents from other systems);
//   - a UUIDv5 of "topic/partition/offset", so a record without any id gets
//     the same UUID on every redelivery and the inbox can dedupe it.
type Marshaler struct{}

var _ kafka.MarshalerUnmarshaler = Marshaler{}

// Marshal implements kafka.Marshaler.
func (Marshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	if _, reserved := msg.Metadata[UUIDHeader]; reserved {
		return nil, fmt.Errorf("metadata key %q is reserved for the message UUID", UUIDHeader)
	}

	// Sorted so the same message always yields byte-identical headers.
	keys := make([]string, 0, len(msg.Metadata))
	for k := range msg.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	headers := make([]sarama.RecordHeader, 0, len(keys)+1)
	headers = append(headers, sarama.RecordHeader{Key: []byte(UUIDHeader), Value: []byte(msg.UUID)})
	for _, k := range keys {
		headers = append(headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(msg.Metadata[k])})
	}

	key := msg.Metadata.Get(PartitionKeyMetadata)
	if key == "" {
		key = msg.UUID
	}

	return &sarama.ProducerMessage{
		Topic:   topic,
		Key:     sarama.StringEncoder(key),
		Value:   sarama.ByteEncoder(msg.Payload),
		Headers: headers,
	}, nil
}

// Unmarshal implements kafka.Unmarshaler. It never fails: watermill-kafka
// answers an unmarshal error by abandoning the claim, and the same record
// would fail again on every restart, wedging its partition.
func (Marshaler) Unmarshal(rec *sarama.ConsumerMessage) (*message.Message, error) {
	var id string
	metadata := make(message.Metadata, len(rec.Headers))
	for _, h := range rec.Headers {
		if h == nil {
			continue
		}
		if string(h.Key) == UUIDHeader {
			id = string(h.Value)
			continue
		}
		metadata.Set(string(h.Key), string(h.Value))
	}
	if id == "" {
		id = metadata.Get(CloudEventsIDHeader)
	}
	if id == "" {
		id = DerivedID(rec.Topic, rec.Partition, rec.Offset)
	}

	msg := message.NewMessage(id, rec.Value)
	msg.Metadata = metadata
	return msg, nil
}

// DerivedID is the UUID given to a record that carries no id header: a UUIDv5
// of its position, stable across redeliveries of the same record.
func DerivedID(topic string, partition int32, offset int64) string {
	name := fmt.Sprintf("%s/%d/%d", topic, partition, offset)
	return uuid.NewSHA1(derivedIDNamespace, []byte(name)).String()
}
