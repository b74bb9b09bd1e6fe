package lag

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaReader measures lag on Kafka topics through the admin API.
type KafkaReader struct {
	brokers []string
	now     func() time.Time
}

// NewKafkaReader returns a reader of the brokers' consumer groups.
func NewKafkaReader(brokers []string) *KafkaReader {
	return &KafkaReader{brokers: brokers, now: time.Now}
}

// Transport is "kafka".
func (r *KafkaReader) Transport() string { return "kafka" }

// Read compares, per partition, the group's committed offset (the log
// start when it has none) with the high watermark, then reads the record
// at the committed offset of each lagging partition for its timestamp.
func (r *KafkaReader) Read(ctx context.Context, pairs []Pair) ([]Lag, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...))
	if err != nil {
		return nil, fmt.Errorf("lag: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	topics := make([]string, 0, len(pairs))
	for _, p := range pairs {
		topics = append(topics, p.Topic)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("lag: end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("lag: start offsets: %w", err)
	}
	var out []Lag
	for _, p := range pairs {
		if _, ok := ends[p.Topic]; !ok {
			continue // the topic does not exist yet
		}
		commits, err := adm.FetchOffsets(ctx, p.Group)
		if errors.Is(err, kerr.GroupIDNotFound) {
			commits, err = nil, nil // the group never committed: it is behind by all of it
		}
		if err != nil {
			return nil, fmt.Errorf("lag: offsets of %s: %w", p.Group, err)
		}
		l := Lag{Pair: p}
		behind := map[int32]int64{}
		for part, end := range ends[p.Topic] {
			if end.Err != nil {
				continue // the topic was just deleted or is still being created
			}
			from := int64(0)
			if s, ok := starts.Lookup(p.Topic, part); ok && s.Err == nil {
				from = s.Offset
			}
			if c, ok := commits.Lookup(p.Topic, part); ok && c.Err == nil && c.At >= from {
				from = c.At
			}
			if end.Offset > from {
				l.Messages += end.Offset - from
				behind[part] = from
			}
		}
		if len(behind) > 0 {
			oldest, err := r.oldest(ctx, p.Topic, behind)
			if err != nil {
				return nil, err
			}
			if !oldest.IsZero() {
				l.OldestAge = max(r.now().Sub(oldest), 0)
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// oldest reads one record at each given offset and returns the earliest
// timestamp among them.
func (r *KafkaReader) oldest(ctx context.Context, topic string, at map[int32]int64) (time.Time, error) {
	offsets := map[int32]kgo.Offset{}
	for p, o := range at {
		offsets[p] = kgo.NewOffset().At(o)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxPartitionBytes(64<<10), kgo.FetchMaxBytes(1<<20))
	if err != nil {
		return time.Time{}, fmt.Errorf("lag: kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var oldest time.Time
	seen := map[int32]bool{}
	for len(seen) < len(at) {
		fs := cl.PollRecords(ctx, 100)
		if ctx.Err() != nil {
			break // partial: the partitions read so far
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if seen[rec.Partition] {
				return
			}
			seen[rec.Partition] = true
			if oldest.IsZero() || rec.Timestamp.Before(oldest) {
				oldest = rec.Timestamp
			}
		})
	}
	return oldest, nil
}
