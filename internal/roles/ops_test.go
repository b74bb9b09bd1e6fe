package roles_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/roles"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// TestOpsLag publishes to user-created with nobody consuming: `rfd lag`
// shows the group three messages behind, on every transport; on Kafka,
// `rfd outbox status` shows committed outbox messages not yet relayed.
func TestOpsLag(t *testing.T) {
	testenv.Each(t, func(t *testing.T, env *testenv.Env) {
		ctx := context.Background()
		topic := env.Config.TopicUserCreated
		env.EnsureTopics(t, topic)
		msgs := []*message.Message{}
		for i := range 3 {
			msgs = append(msgs, message.NewMessage(fmt.Sprintf("u-%d", i), []byte(`{}`)))
		}
		if err := env.Transport.Publisher().Publish(topic, msgs...); err != nil {
			t.Fatal(err)
		}
		ops, err := roles.NewOps(ctx, env.Config, env.DB, roles.NewMigrator(env.DB), env.PubSub)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := ops.Lag(ctx, &out); err != nil {
			t.Fatal(err)
		}
		row := regexp.MustCompile(`(?m)^` + env.Config.Transport + `\s+user-created\s+rfd\.user-created\s+3\s+\d+s$`)
		if !row.Match(out.Bytes()) {
			t.Fatalf("rfd lag:\n%s", out.String())
		}

		out.Reset()
		if env.IsKafka() {
			for i := range 2 {
				err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					return env.Outbox.Publish(ctx, tx, topic, message.NewMessage(fmt.Sprintf("o-%d", i), []byte(`{}`)))
				})
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := ops.OutboxStatus(ctx, &out); err != nil {
			t.Fatal(err)
		}
		want := `^sql transport: the outbox writes to its topics directly`
		if env.IsKafka() {
			want = `^outbox rfd-outbox, relayed by group rfd\.forwarder: 2 messages waiting, oldest \d+s\n$`
		}
		if !regexp.MustCompile(want).Match(out.Bytes()) {
			t.Fatalf("rfd outbox status: %q", out.String())
		}
	})
}
