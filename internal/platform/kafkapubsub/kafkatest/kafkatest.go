// Package kafkatest starts an in-process Kafka broker (franz-go's kfake) for
// tests. It listens on loopback TCP, so the code under test connects with
// its real client, exactly as it would to a remote cluster.
package kafkatest

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Start starts a single-broker cluster on 127.0.0.1 and returns its
// "host:port" addresses; it is closed when the test ends. Topics are
// auto-created on first use (by a publish or a subscribe) with partitions
// partitions each.
func Start(t testing.TB, partitions int) []string {
	t.Helper()
	if partitions < 1 {
		t.Fatalf("kafkatest: partitions must be at least 1, got %d", partitions)
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(0), // any free port; kfake always binds 127.0.0.1
		kfake.DefaultNumPartitions(partitions),
		kfake.AllowAutoTopicCreation(),
		// The default floor of 6s would reject the short session
		// timeouts tests use to make rebalances fast.
		kfake.GroupMinSessionTimeout(100*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("kafkatest: start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}
