package router_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/msgerr"
	"github.com/rfd-notify/rfd/internal/platform/logging"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
	"github.com/rfd-notify/rfd/router"
)

// TestFailureClasses: a panic is poisoned at once as permanent; a transient
// failure is retried and poisoned as exhausted after the configured number of
// attempts; the healthy message after both is processed.
func TestFailureClasses(t *testing.T) {
	testenv.Each(t, func(t *testing.T, env *testenv.Env) {
		const topic = "failure-classes"
		env.EnsureTopics(t, topic, env.Config.TopicPoison)
		poison := collectPoison(t, env)

		var flakyCalls, okCalls atomic.Int32
		var sawCorrelation atomic.Value
		rt := env.NewRouter(t)
		err := rt.AddConsumer(router.Handler{
			Name: "classes", Topic: topic, ConsumerGroup: "classes",
			Handle: func(msg *message.Message) error {
				switch msg.UUID {
				case "panics":
					panic("handler bug")
				case "flaky":
					flakyCalls.Add(1)
					return msgerr.Transient(errors.New("provider timed out"))
				default:
					okCalls.Add(1)
					sawCorrelation.Store(logging.CorrelationID(msg.Context()))
					return nil
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		testenv.Run(t, rt)

		ok := message.NewMessage("ok", []byte(`{}`))
		ok.Metadata.Set("ce_id", "ok")
		publish(t, env, topic, message.NewMessage("panics", []byte(`{}`)), message.NewMessage("flaky", []byte(`{}`)), ok)

		testenv.Eventually(t, 60*time.Second, "two poisoned, one processed", func() (bool, string) {
			return len(poison.snapshot()) == 2 && okCalls.Load() == 1, fmt.Sprintf("poison=%d ok=%d", len(poison.snapshot()), okCalls.Load())
		})
		byID := map[string]*message.Message{}
		for _, m := range poison.snapshot() {
			byID[m.UUID] = m
		}
		if m := byID["panics"]; m == nil || m.Metadata.Get(router.PoisonClassKey) != "permanent" || m.Metadata.Get(router.AttemptsKey) != "1" {
			t.Errorf("panicking message: %+v, want permanent after 1 attempt", meta(m))
		}
		want := fmt.Sprint(env.Config.RetryMaxAttempts)
		if m := byID["flaky"]; m == nil || m.Metadata.Get(router.PoisonClassKey) != "exhausted" || m.Metadata.Get(router.AttemptsKey) != want {
			t.Errorf("flaky message: %+v, want exhausted after %s attempts", meta(m), want)
		}
		if got := flakyCalls.Load(); fmt.Sprint(got) != want {
			t.Errorf("flaky handler ran %d times, want %s", got, want)
		}
		if m := byID["flaky"]; m != nil && m.Metadata.Get(middleware.ReasonForPoisonedKey) == "" {
			t.Error("flaky message has no poison reason")
		}
		if got, _ := sawCorrelation.Load().(string); got != "ok" {
			t.Errorf("correlation id in handler context = %q, want the ce_id %q", got, "ok")
		}
	})
}

func meta(m *message.Message) any {
	if m == nil {
		return "<not poisoned>"
	}
	return m.Metadata
}

// TestCloseFinishesInFlight: closing the router (what SIGTERM does) lets the
// message being handled finish and commit.
func TestCloseFinishesInFlight(t *testing.T) {
	testenv.Each(t, func(t *testing.T, env *testenv.Env) {
		const topic = "in-flight"
		env.EnsureTopics(t, topic, env.Config.TopicPoison)
		ctx := context.Background()
		if _, err := env.DB.ExecContext(ctx, `CREATE TABLE in_flight (id TEXT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		entered := make(chan struct{})
		rt := env.NewRouter(t)
		err := rt.AddConsumer(router.Handler{
			Name: "slow", Topic: topic, ConsumerGroup: "slow",
			Handle: func(msg *message.Message) error {
				close(entered)
				_, err := env.Inbox.Process(msg.Context(), "slow", msg.UUID, func(ctx context.Context, tx bun.Tx) error {
					time.Sleep(500 * time.Millisecond)
					_, err := tx.ExecContext(ctx, `INSERT INTO in_flight (id) VALUES (?)`, msg.UUID)
					return err
				})
				return err
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- rt.Run(context.Background()) }()
		<-rt.Running()
		publish(t, env, topic, message.NewMessage("slow-1", []byte(`{}`)))
		select {
		case <-entered:
		case <-time.After(60 * time.Second):
			t.Fatal("handler never ran")
		}
		if err := rt.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		<-done
		var n int
		if err := env.DB.QueryRowContext(ctx, `SELECT count(*) FROM in_flight`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("in-flight message effects = %d after close, want 1", n)
		}
	})
}
