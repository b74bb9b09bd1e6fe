package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/msgerr"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
	"github.com/rfd-notify/rfd/outbox"
	"github.com/rfd-notify/rfd/router"
)

// spine is the throw-away pipeline of the spine tests: handler 1 reads topic
// T, writes a row and publishes one message to T2 through the outbox in the
// same transaction; handler 2 reads T2 and writes a row.
type spine struct {
	env     *testenv.Env
	t1, t2  string
	h1Fails func(msg *message.Message, attempt int) error // optional fault injection, after the writes
	h1Calls sync.Map                                      // message id -> *atomic.Int32
}

type spinePayload struct {
	N int `json:"n"`
}

func newSpine(t *testing.T, env *testenv.Env) *spine {
	t.Helper()
	ctx := context.Background()
	for _, ddl := range []string{
		`CREATE TABLE spine_h1 (message_id TEXT PRIMARY KEY, n INTEGER NOT NULL)`,
		`CREATE TABLE spine_h2 (message_id TEXT PRIMARY KEY, n INTEGER NOT NULL)`,
	} {
		if _, err := env.DB.ExecContext(ctx, ddl); err != nil {
			t.Fatalf("create test table: %v", err)
		}
	}
	s := &spine{env: env, t1: "spine-t1", t2: "spine-t2"}
	env.EnsureTopics(t, s.t1, s.t2, env.Config.TopicPoison)
	return s
}

func (s *spine) attempt(id string) int {
	v, _ := s.h1Calls.LoadOrStore(id, new(atomic.Int32))
	return int(v.(*atomic.Int32).Add(1))
}

func (s *spine) handler1(msg *message.Message) error {
	var p spinePayload
	if err := json.Unmarshal(msg.Payload, &p); err != nil {
		return msgerr.Permanentf("decode spine payload: %v", err)
	}
	attempt := s.attempt(msg.UUID)
	_, err := s.env.Inbox.Process(msg.Context(), "spine-h1", msg.UUID, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO spine_h1 (message_id, n) VALUES (?, ?)", msg.UUID, p.N); err != nil {
			return fmt.Errorf("insert spine_h1: %w", err)
		}
		out := message.NewMessage("t2-"+msg.UUID, msg.Payload)
		out.Metadata.Set(outbox.PartitionKeyKey, strconv.Itoa(p.N%7))
		if err := s.env.Outbox.Publish(ctx, tx, s.t2, out); err != nil {
			return err
		}
		if s.h1Fails != nil {
			return s.h1Fails(msg, attempt)
		}
		return nil
	})
	return err
}

func (s *spine) handler2(msg *message.Message) error {
	var p spinePayload
	if err := json.Unmarshal(msg.Payload, &p); err != nil {
		return msgerr.Permanentf("decode spine payload: %v", err)
	}
	_, err := s.env.Inbox.Process(msg.Context(), "spine-h2", msg.UUID, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO spine_h2 (message_id, n) VALUES (?, ?)", msg.UUID, p.N)
		return err
	})
	return err
}

func (s *spine) start(t *testing.T) {
	t.Helper()
	rt := s.env.NewRouter(t)
	for _, h := range []router.Handler{
		{Name: "spine-h1", Topic: s.t1, ConsumerGroup: "spine-h1", Handle: s.handler1},
		{Name: "spine-h2", Topic: s.t2, ConsumerGroup: "spine-h2", Handle: s.handler2},
	} {
		if err := rt.AddConsumer(h); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Run(t, rt)
}

func (s *spine) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := s.env.DB.QueryRowContext(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// poisonCollector reads the poison topic in its own consumer group.
type poisonCollector struct {
	mu   sync.Mutex
	msgs []*message.Message
}

func collectPoison(t *testing.T, env *testenv.Env) *poisonCollector {
	t.Helper()
	sub, err := env.Transport.Subscriber("spine-poison-reader")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, env.Config.TopicPoison)
	if err != nil {
		t.Fatal(err)
	}
	pc := &poisonCollector{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ch {
			pc.mu.Lock()
			pc.msgs = append(pc.msgs, m)
			pc.mu.Unlock()
			m.Ack()
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = sub.Close()
		<-done
	})
	return pc
}

func (pc *poisonCollector) snapshot() []*message.Message {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return append([]*message.Message(nil), pc.msgs...)
}

func publish(t *testing.T, env *testenv.Env, topic string, msgs ...*message.Message) {
	t.Helper()
	if err := env.Transport.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// TestSpine pushes 1,000 messages through two chained handlers: 985 distinct
// good ones, 10 exact redeliveries and 5 undecodable ones.
func TestSpine(t *testing.T) {
	testenv.Each(t, func(t *testing.T, env *testenv.Env) {
		s := newSpine(t, env)
		poison := collectPoison(t, env)
		s.start(t)

		const total, dups, bad = 1000, 10, 5
		good := total - dups - bad
		badAt := map[int]bool{100: true, 300: true, 500: true, 700: true, 900: true}
		var batch []*message.Message
		var goodIDs []string
		var badIDs []string
		for i := 0; len(batch) < total; i++ {
			switch {
			case badAt[len(batch)]:
				id := fmt.Sprintf("bad-%d", len(batch))
				m := message.NewMessage(id, []byte("{not json"))
				m.Metadata.Set(outbox.PartitionKeyKey, "k0")
				badIDs = append(badIDs, id)
				batch = append(batch, m)
			case len(batch)%97 == 50 && len(goodIDs) > 0 && len(batch)-len(goodIDs)-len(badIDs) < dups:
				// An exact redelivery of an earlier message: same id, same body.
				prev := goodIDs[len(goodIDs)/2]
				n, _ := strconv.Atoi(prev[len("msg-"):])
				m := message.NewMessage(prev, mustJSON(t, spinePayload{N: n}))
				m.Metadata.Set(outbox.PartitionKeyKey, strconv.Itoa(n%7))
				batch = append(batch, m)
			default:
				id := fmt.Sprintf("msg-%d", i)
				m := message.NewMessage(id, mustJSON(t, spinePayload{N: i}))
				m.Metadata.Set(outbox.PartitionKeyKey, strconv.Itoa(i%7))
				goodIDs = append(goodIDs, id)
				batch = append(batch, m)
			}
		}
		if len(goodIDs) != good || len(badIDs) != bad {
			t.Fatalf("test setup: %d good, %d bad, want %d and %d", len(goodIDs), len(badIDs), good, bad)
		}
		for i := 0; i < len(batch); i += 100 {
			publish(t, env, s.t1, batch[i:min(i+100, len(batch))]...)
		}

		testenv.Eventually(t, 120*time.Second, "all good messages through both handlers", func() (bool, string) {
			h1, h2, p := s.count(t, "spine_h1"), s.count(t, "spine_h2"), len(poison.snapshot())
			return h1 == good && h2 == good && p >= bad, fmt.Sprintf("h1=%d h2=%d poison=%d", h1, h2, p)
		})
		// Give stray duplicates a moment to show up before the exact counts.
		time.Sleep(300 * time.Millisecond)
		if h1, h2 := s.count(t, "spine_h1"), s.count(t, "spine_h2"); h1 != good || h2 != good {
			t.Fatalf("rows: h1=%d h2=%d, want %d each", h1, h2, good)
		}

		got := poison.snapshot()
		if len(got) != bad {
			t.Fatalf("poison topic has %d messages, want %d", len(got), bad)
		}
		seen := map[string]bool{}
		for _, m := range got {
			seen[m.UUID] = true
			if reason := m.Metadata.Get(middleware.ReasonForPoisonedKey); reason == "" {
				t.Errorf("poisoned %s has no reason", m.UUID)
			}
			if topic := m.Metadata.Get(middleware.PoisonedTopicKey); topic != s.t1 {
				t.Errorf("poisoned %s: original topic %q, want %q", m.UUID, topic, s.t1)
			}
			if h := m.Metadata.Get(middleware.PoisonedHandlerKey); h != "spine-h1" {
				t.Errorf("poisoned %s: handler %q, want spine-h1", m.UUID, h)
			}
			// A permanent error is not retried: one attempt, so the messages
			// behind it on the partition waited for nothing.
			if a := m.Metadata.Get(router.AttemptsKey); a != "1" {
				t.Errorf("poisoned %s: attempts %q, want 1", m.UUID, a)
			}
			if c := m.Metadata.Get(router.PoisonClassKey); c != "permanent" {
				t.Errorf("poisoned %s: class %q, want permanent", m.UUID, c)
			}
		}
		for _, id := range badIDs {
			if !seen[id] {
				t.Errorf("bad message %s is not in the poison topic", id)
			}
		}
	})
}

// TestSpineCrashBeforeCommit fails handler 1 after its writes but before the
// commit on the first attempt, and again after the commit but before the ack:
// either way the retry leaves exactly one effect.
func TestSpineCrashBeforeCommit(t *testing.T) {
	testenv.Each(t, func(t *testing.T, env *testenv.Env) {
		s := newSpine(t, env)
		var failedBeforeCommit, failedAfterCommit atomic.Int32
		s.h1Fails = func(msg *message.Message, attempt int) error {
			if msg.UUID == "crash-before-commit" && attempt == 1 {
				failedBeforeCommit.Add(1)
				return msgerr.Transient(errors.New("injected crash before commit"))
			}
			return nil
		}
		rtHandler := s.handler1
		afterCommit := func(msg *message.Message) error {
			err := rtHandler(msg)
			if err == nil && msg.UUID == "crash-after-commit" && failedAfterCommit.Add(1) == 1 {
				return msgerr.Transient(errors.New("injected crash after commit, before ack"))
			}
			return err
		}

		rt := env.NewRouter(t)
		for _, h := range []router.Handler{
			{Name: "spine-h1", Topic: s.t1, ConsumerGroup: "spine-h1", Handle: afterCommit},
			{Name: "spine-h2", Topic: s.t2, ConsumerGroup: "spine-h2", Handle: s.handler2},
		} {
			if err := rt.AddConsumer(h); err != nil {
				t.Fatal(err)
			}
		}
		testenv.Run(t, rt)

		publish(t, env, s.t1,
			message.NewMessage("crash-before-commit", mustJSON(t, spinePayload{N: 1})),
			message.NewMessage("crash-after-commit", mustJSON(t, spinePayload{N: 2})),
			message.NewMessage("after-the-crashes", mustJSON(t, spinePayload{N: 3})),
		)
		testenv.Eventually(t, 60*time.Second, "three messages through both handlers", func() (bool, string) {
			h1, h2 := s.count(t, "spine_h1"), s.count(t, "spine_h2")
			return h1 == 3 && h2 == 3, fmt.Sprintf("h1=%d h2=%d", h1, h2)
		})
		time.Sleep(300 * time.Millisecond)
		if h1, h2 := s.count(t, "spine_h1"), s.count(t, "spine_h2"); h1 != 3 || h2 != 3 {
			t.Fatalf("rows: h1=%d h2=%d, want exactly 3 each", h1, h2)
		}
		if failedBeforeCommit.Load() != 1 || failedAfterCommit.Load() < 1 {
			t.Fatalf("faults not injected: before=%d after=%d", failedBeforeCommit.Load(), failedAfterCommit.Load())
		}
		if n := attempts(s, "crash-before-commit"); n < 2 {
			t.Fatalf("crash-before-commit ran %d times, want a retry", n)
		}
	})
}

func attempts(s *spine, id string) int {
	v, ok := s.h1Calls.Load(id)
	if !ok {
		return 0
	}
	return int(v.(*atomic.Int32).Load())
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
