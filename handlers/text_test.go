package handlers_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
	"github.com/rfd-notify/rfd/router"
)

// slowRetries makes a retried message hold its partition for minutes: a
// message that is retried instead of poisoned at once shows as a healthy
// event behind it that is not processed in time.
func slowRetries(c *config.Config) {
	c.RetryMaxAttempts = 5
	c.RetryInitialInterval = 30 * time.Second
	c.RetryMaxInterval = time.Minute
}

// TestTextTheDatabaseCannotStoreIsPoisonedAtOnce sends, on each inbound
// topic, events whose text PostgreSQL cannot store (a NUL, escaped or not
// in a key, invalid UTF-8) followed by a healthy event with the same key.
// Each bad event is poisoned as permanent on its first attempt, and the
// healthy one behind it is processed without waiting for retries.
func TestTextTheDatabaseCannotStoreIsPoisonedAtOnce(t *testing.T) {
	for _, name := range testenv.Combinations {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newPipeline(t, name, slowRetries)
			cfg := p.env.Config
			p.registerDoctor("doc-nul")

			type topicCase struct {
				consumer, topic, ceType, key string
				event                        func() map[string]any
				// field is where the bad text goes.
				field []string
			}
			cases := []topicCase{
				{"user-created", cfg.TopicUserCreated, events.TypeUserCreated, "doc-nul",
					func() map[string]any { return doctorEvent("doc-nul", "Dr. Nul") }, []string{"name"}},
				{"checkup-events", cfg.TopicCheckupEvents, events.TypeCheckupEvent, "CU-NUL",
					func() map[string]any { return resultEvent("result_available", "CU-NUL", 1, "final", false, "doc-nul") },
					[]string{"patient", "display_name"}},
				{"order-history-events", cfg.TopicOrderHistoryEvents, events.TypeOrderHistoryEvent, "ORD-NUL",
					func() map[string]any { return orderEvent("ORD-NUL", 1, "placed", "doc-nul") }, []string{"description"}},
				{"internal-login", cfg.TopicInternalLogin, events.TypeInternalLogin, "doc-nul",
					func() map[string]any { return loginEvent("doc-nul", "success", "203.0.113.7", startOfTest) }, []string{"user_agent"}},
			}
			bad := map[string]func([]byte) []byte{
				"nul-escaped":  func(b []byte) []byte { return []byte(strings.Replace(string(b), "MARK", `a\u0000b`, 1)) },
				"invalid-utf8": func(b []byte) []byte { return []byte(strings.Replace(string(b), "MARK", "a\xffb", 1)) },
			}
			for _, c := range cases {
				for kind, corrupt := range bad {
					id := fmt.Sprintf("%s-%s", c.consumer, kind)
					ev := c.event()
					set(ev, c.field, "MARK")
					p.publish(c.topic, id, c.ceType, c.key, corrupt(mustJSON(t, ev)))
				}
				healthy := c.consumer + "-healthy"
				start := time.Now()
				p.publish(c.topic, healthy, c.ceType, c.key, c.event())
				p.processed(c.consumer, healthy)
				if d := time.Since(start); d > 20*time.Second {
					t.Errorf("%s: the healthy event waited %s behind the bad ones", c.consumer, d)
				}
				for kind := range bad {
					m := p.poisoned(fmt.Sprintf("%s-%s", c.consumer, kind))
					if got := m.Metadata.Get(router.PoisonClassKey); got != "permanent" {
						t.Errorf("%s %s: poison class %q, want permanent (reason %q)", c.consumer, kind, got, poisonReason(m))
					}
					if got := m.Metadata.Get(router.AttemptsKey); got != "1" {
						t.Errorf("%s %s: %s attempts, want 1", c.consumer, kind, got)
					}
				}
			}
		})
	}
}

// set puts v at path in the nested map ev.
func set(ev map[string]any, path []string, v any) {
	for _, k := range path[:len(path)-1] {
		ev = ev[k].(map[string]any)
	}
	ev[path[len(path)-1]] = v
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
