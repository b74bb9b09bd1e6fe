package outbox_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/testkit/testenv"
	"github.com/rfd-notify/rfd/outbox"
)

// TestForwarderReplicas runs two forwarders (two worker replicas) over one
// outbox: every committed message reaches Kafka, and the relay's consumer
// group lock keeps them from both relaying it.
func TestForwarderReplicas(t *testing.T) {
	env := testenv.New(t, testenv.PostgresKafka)
	const topic = "forwarder-replicas"
	env.EnsureTopics(t, topic)
	ctx := context.Background()

	testenv.Run(t, env.NewRouter(t))
	testenv.Run(t, env.NewRouter(t))

	received := map[string]int{}
	var mu sync.Mutex
	env.Read(t, topic, "forwarder-replicas-reader", func(m *message.Message) {
		mu.Lock()
		received[m.UUID]++
		mu.Unlock()
	})

	const n = 300
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					m := message.NewMessage(fmt.Sprintf("m-%d", i), []byte(`{}`))
					m.Metadata.Set(outbox.PartitionKeyKey, fmt.Sprintf("doctor-%d", i%17))
					return env.Outbox.Publish(ctx, tx, topic, m)
				})
				if err != nil {
					t.Errorf("publish m-%d: %v", i, err)
				}
			}
		}()
	}
	wg.Wait()

	testenv.Eventually(t, 90*time.Second, "every message relayed", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(received) == n, fmt.Sprintf("%d of %d", len(received), n)
	})
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for id, c := range received {
		if c != 1 {
			t.Errorf("%s relayed %d times, want once", id, c)
		}
	}
}
