package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/testkit/testenv"
	"github.com/rfd-notify/rfd/outbox"
	"github.com/rfd-notify/rfd/test/chaos/ledger"
)

// TestOutboxOrdering is run 4: 32 writers each hold their transaction open
// a random 0-200ms before committing outbox messages, so transactions
// commit in another order than their messages were numbered; the relay must
// skip none of them. The relay is the service's forwarder on PostgreSQL,
// relaying to kfake.
func TestOutboxOrdering(t *testing.T) {
	const (
		writers = 32
		topic   = "chaos-outbox-ordering"
		kRelay  = ledger.Kind("relayed")
	)
	n := 5000
	if long() {
		n = 100_000
	}
	env := testenv.New(t, testenv.PostgresKafka)
	env.EnsureTopics(t, topic)
	rt := env.NewRouter(t)
	testenv.Run(t, rt)

	l := ledger.New()
	var (
		next      atomic.Int64
		orderMu   sync.Mutex
		committed []int64 // first message number of each transaction, in commit order
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				// One to five messages a transaction.
				k := 1 + rand.IntN(5)
				first := next.Add(int64(k)) - int64(k)
				if first >= int64(n) {
					return
				}
				last := min(first+int64(k), int64(n))
				var ids []string
				err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					msgs := make([]*message.Message, 0, last-first)
					for i := first; i < last; i++ {
						id := fmt.Sprintf("msg-%07d", i)
						ids = append(ids, id)
						payload, _ := json.Marshal(map[string]string{"id": id})
						m := message.NewMessage(id, payload)
						m.Metadata.Set(outbox.PartitionKeyKey, fmt.Sprintf("writer-%d", w))
						msgs = append(msgs, m)
					}
					if err := env.Outbox.Publish(ctx, tx, topic, msgs...); err != nil {
						return err
					}
					// Hold the transaction open: later numbers commit first.
					time.Sleep(rand.N(200 * time.Millisecond))
					return nil
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				orderMu.Lock()
				committed = append(committed, first)
				orderMu.Unlock()
				for _, id := range ids {
					l.Sent(id, ledger.Effect{Kind: kRelay, Key: id})
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	written := time.Since(start)
	// The case under test must have happened: transactions committing
	// after one that began later.
	overtaken, highest := 0, int64(-1)
	for _, f := range committed {
		if f < highest {
			overtaken++
		}
		highest = max(highest, f)
	}
	if overtaken == 0 {
		t.Fatal("no transaction committed after a later one: the run tested nothing")
	}

	// Wait until the forwarder has acked every outbox row (or stalls for
	// a minute), then read the destination topic.
	q := fmt.Sprintf(`SELECT
	(SELECT count(*) FROM %[1]q WHERE "offset" <= COALESCE((SELECT max(offset_acked) FROM %[2]q WHERE consumer_group = $1), 0)),
	(SELECT count(*) FROM %[1]q)`, "watermill_"+env.Config.TopicOutbox, "watermill_offsets_"+env.Config.TopicOutbox)
	last, lastChange := -1, time.Now()
	for {
		var relayed, rows int
		if err := env.DB.DB.QueryRowContext(ctx, q, env.Config.ConsumerGroup("forwarder")).Scan(&relayed, &rows); err != nil {
			t.Fatalf("forwarder progress: %v", err)
		}
		if rows != n {
			t.Fatalf("outbox holds %d rows, want %d", rows, n)
		}
		if relayed >= n {
			break
		}
		if relayed != last {
			last, lastChange = relayed, time.Now()
		} else if time.Since(lastChange) > time.Minute {
			t.Logf("forwarder stuck at %d of %d acked rows", relayed, n)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	relayedIn := time.Since(start)
	ids, err := readTopic(ctx, env.Config.KafkaBrokers, topic, func(r *kgo.Record) string {
		var m struct{ ID string }
		if err := json.Unmarshal(r.Value, &m); err != nil {
			return "undecodable: " + err.Error()
		}
		return m.ID
	})
	if err != nil {
		t.Fatal(err)
	}
	r := l.Check(ledger.Observed{kRelay: ledger.Tally(ids)}, nil)
	line := fmt.Sprintf("chaos outbox-ordering: %d writers, %d messages in %d transactions (%d committed after a later one) written in %s, relayed by %s: %s",
		writers, n, len(committed), overtaken, written.Round(time.Millisecond), relayedIn.Round(time.Millisecond), r)
	t.Log(line)
	fmt.Println(line)
	if !r.Pass() || r.Unexpected != 0 || r.Sent != n {
		t.Errorf("outbox ordering: %s\n%s", r, r.Detail())
	}
}
