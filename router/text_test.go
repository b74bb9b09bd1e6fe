package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/testkit/testenv"
	"github.com/rfd-notify/rfd/outbox"
	"github.com/rfd-notify/rfd/router"
)

// TestTextTheDatabaseRefusesIsPermanent is the safety net behind the
// decoders: a handler that fails on a message carrying text no database
// can store (a NUL in its JSON payload or in a metadata value), or whose
// write PostgreSQL refuses for its text (\u0000 in jsonb: SQLSTATE 22P05),
// fails permanently: the message is poisoned after one attempt and the
// healthy message behind it on the same partition does not wait for
// retries (which here would hold the partition for minutes).
func TestTextTheDatabaseRefusesIsPermanent(t *testing.T) {
	testenv.Each(t, func(t *testing.T, env *testenv.Env) {
		ctx := context.Background()
		if _, err := env.DB.ExecContext(ctx, `CREATE TABLE text_rows (id TEXT PRIMARY KEY, body TEXT, doc JSONB)`); err != nil {
			t.Fatal(err)
		}
		env.EnsureTopics(t, "text-in", env.Config.TopicPoison)
		env.Config.RetryMaxAttempts = 5
		env.Config.RetryInitialInterval = 30 * time.Second
		env.Config.RetryMaxInterval = time.Minute
		poison := collectPoison(t, env)
		rt := env.NewRouter(t)
		err := rt.AddConsumer(router.Handler{Name: "text", Topic: "text-in", ConsumerGroup: "text",
			Handle: func(msg *message.Message) error {
				// A handler that checks nothing: it stores the payload's
				// text and the "note" metadata as they come.
				var p struct {
					Text string `json:"text"`
				}
				if err := json.Unmarshal(msg.Payload, &p); err != nil {
					return err
				}
				doc := `{"a":1}`
				if p.Text == "derived" {
					// Text the handler made itself, which only the
					// database refuses (SQLite stores it).
					doc = `{"a":"\u0000"}`
				}
				_, err := env.Inbox.Process(msg.Context(), "text", msg.UUID, func(ctx context.Context, tx bun.Tx) error {
					_, err := tx.ExecContext(ctx, `INSERT INTO text_rows (id, body, doc) VALUES (?, ?, ?)`, msg.UUID, p.Text+msg.Metadata.Get("note"), doc)
					if err != nil {
						return fmt.Errorf("insert text row: %w", err)
					}
					return nil
				})
				return err
			}})
		if err != nil {
			t.Fatal(err)
		}
		testenv.Run(t, rt)

		bad := map[string]*message.Message{
			"nul-payload":  message.NewMessage("nul-payload", []byte(`{"text":"a\u0000b"}`)),
			"nul-metadata": message.NewMessage("nul-metadata", []byte(`{"text":"fine"}`)),
		}
		bad["nul-metadata"].Metadata.Set("note", "a\x00b")
		derived := message.NewMessage("derived", []byte(`{"text":"derived"}`))
		if env.Name != testenv.SQLiteSQL {
			bad["derived"] = derived
		}
		healthy := message.NewMessage("healthy", []byte(`{"text":"fine"}`))
		start := time.Now()
		for _, m := range []*message.Message{bad["nul-payload"], bad["nul-metadata"], derived, healthy} {
			m.Metadata.Set(outbox.PartitionKeyKey, "same")
			publish(t, env, "text-in", m)
		}
		testenv.Eventually(t, 60*time.Second, "the healthy message is processed", func() (bool, string) {
			var n int
			if err := env.DB.QueryRowContext(ctx, `SELECT count(*) FROM text_rows WHERE id = 'healthy'`).Scan(&n); err != nil {
				return false, err.Error()
			}
			return n == 1, "not yet"
		})
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("the healthy message waited %s behind the bad ones", d)
		}
		testenv.Eventually(t, 60*time.Second, "the bad messages are poisoned", func() (bool, string) {
			return len(poison.snapshot()) >= len(bad), fmt.Sprintf("%d poisoned", len(poison.snapshot()))
		})
		for _, m := range poison.snapshot() {
			if bad[m.UUID] == nil {
				t.Errorf("poisoned %s, which is not a bad message", m.UUID)
				continue
			}
			if c := m.Metadata.Get(router.PoisonClassKey); c != "permanent" {
				t.Errorf("poisoned %s: class %q, want permanent", m.UUID, c)
			}
			if a := m.Metadata.Get(router.AttemptsKey); a != "1" {
				t.Errorf("poisoned %s: attempts %q, want 1", m.UUID, a)
			}
		}
	})
}
