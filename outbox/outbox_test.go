package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// TestOutboxAtomicity: messages published in a rolled-back transaction never
// arrive; messages of a committed one arrive exactly once, on Kafka through
// the forwarder.
func TestOutboxAtomicity(t *testing.T) {
	testenv.Each(t, func(t *testing.T, env *testenv.Env) {
		const topic = "outbox-atomicity"
		env.EnsureTopics(t, topic)
		ctx := context.Background()

		if env.IsKafka() {
			testenv.Run(t, env.NewRouter(t)) // runs the forwarder
		}

		received := map[string]int{}
		var mu sync.Mutex
		env.Read(t, topic, "outbox-atomicity-reader", func(m *message.Message) {
			mu.Lock()
			received[m.UUID]++
			mu.Unlock()
		})

		errRollback := errors.New("roll back on purpose")
		for i := range 5 {
			err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				if err := env.Outbox.Publish(ctx, tx, topic, message.NewMessage(fmt.Sprintf("rolled-back-%d", i), []byte(`{}`))); err != nil {
					return err
				}
				return errRollback
			})
			if !errors.Is(err, errRollback) {
				t.Fatalf("rolled-back tx: %v", err)
			}
		}
		for i := range 5 {
			err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				return env.Outbox.Publish(ctx, tx, topic, message.NewMessage(fmt.Sprintf("committed-%d", i), []byte(`{}`)))
			})
			if err != nil {
				t.Fatalf("committed tx: %v", err)
			}
		}

		testenv.Eventually(t, 60*time.Second, "committed messages arrive", func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			n := 0
			for i := range 5 {
				if received[fmt.Sprintf("committed-%d", i)] > 0 {
					n++
				}
			}
			return n == 5, fmt.Sprintf("%d of 5 committed arrived", n)
		})
		// The rolled-back messages were written before the committed ones:
		// had they existed, they would have been delivered by now. Wait a
		// little longer for any duplicate to surface.
		time.Sleep(500 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		for id, n := range received {
			switch {
			case len(id) > 10 && id[:11] == "rolled-back":
				t.Errorf("%s arrived %d times, want never", id, n)
			case n != 1:
				t.Errorf("%s arrived %d times, want exactly once", id, n)
			}
		}
		if len(received) != 5 {
			t.Errorf("received %d distinct messages, want 5: %v", len(received), received)
		}
	})
}
