// Package lag measures how far consumer groups are behind their topics, on
// both transports: on Kafka the committed offset against the high
// watermark of each partition (franz-go kadm) and the timestamp of the
// oldest record not yet consumed; on the SQL transport the rows after the
// group's acked offset in watermill-sql's offsets table and the age of the
// oldest of them. The outbox backlog is the same measure for the
// forwarder's group on the outbox topic. Collector exports them to
// Prometheus; `rfd lag` and `rfd outbox status` print them.
package lag

import (
	"context"
	"time"
)

// Pair is a topic read by a consumer group.
type Pair struct {
	Topic string
	Group string
}

// Lag is how far a group is behind on a topic.
type Lag struct {
	Pair
	// Messages not yet consumed (acked) by the group.
	Messages int64
	// OldestAge is the age of the oldest message not yet consumed; zero
	// when the group is caught up.
	OldestAge time.Duration
}

// Reader measures the lag of consumer groups.
type Reader interface {
	// Transport is "sql" or "kafka".
	Transport() string
	// Read measures each pair. A pair that cannot be measured (its topic
	// does not exist yet) is left out; an unreachable broker or database
	// is an error.
	Read(ctx context.Context, pairs []Pair) ([]Lag, error)
}
