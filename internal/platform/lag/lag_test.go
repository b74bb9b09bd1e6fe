package lag_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/platform/lag"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
	"github.com/rfd-notify/rfd/outbox"
)

func reader(t *testing.T, env *testenv.Env) lag.Reader {
	t.Helper()
	if env.IsKafka() {
		return lag.NewKafkaReader(env.Config.KafkaBrokers)
	}
	r, err := lag.NewSQLReader(env.DB, env.PubSub)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func read(t *testing.T, r lag.Reader, p lag.Pair) lag.Lag {
	t.Helper()
	ls, err := r.Read(context.Background(), []lag.Pair{p})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 {
		t.Fatalf("lag of %v: %d results", p, len(ls))
	}
	return ls[0]
}

// TestConsumerLag publishes to a topic nobody reads: the group's lag is
// every message and the oldest ages; a consumer catches up and both drop
// to zero. On every transport.
func TestConsumerLag(t *testing.T) {
	testenv.Each(t, func(t *testing.T, env *testenv.Env) {
		const topic, n = "lag-test", 25
		env.EnsureTopics(t, topic)
		p := lag.Pair{Topic: topic, Group: "rfd.lag-test"}
		r := reader(t, env)

		msgs := make([]*message.Message, n)
		for i := range msgs {
			msgs[i] = message.NewMessage(fmt.Sprintf("lag-%d", i), []byte(`{}`))
			msgs[i].Metadata.Set(outbox.PartitionKeyKey, fmt.Sprintf("k%d", i%5))
		}
		if err := env.Transport.Publisher().Publish(topic, msgs...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)
		l := read(t, r, p)
		if l.Messages != n || l.OldestAge < time.Second || l.OldestAge > time.Minute {
			t.Fatalf("before consuming: %d messages, oldest %s; want %d and about a second", l.Messages, l.OldestAge, n)
		}

		env.Read(t, topic, p.Group, func(*message.Message) {})
		testenv.Eventually(t, 60*time.Second, "caught up", func() (bool, string) {
			l := read(t, r, p)
			return l.Messages == 0 && l.OldestAge == 0, fmt.Sprintf("%d messages, %s", l.Messages, l.OldestAge)
		})
	})
}

// TestCollectorOutboxBacklog commits outbox messages on Kafka with no
// forwarder running: the collector exports them as backlog with their
// age; a forwarder relays them and the backlog drops to zero.
func TestCollectorOutboxBacklog(t *testing.T) {
	env := testenv.New(t, testenv.PostgresKafka)
	const topic = "backlog-test"
	env.EnsureTopics(t, topic)
	ctx := context.Background()
	for i := range 7 {
		err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			return env.Outbox.Publish(ctx, tx, topic, message.NewMessage(fmt.Sprintf("b-%d", i), []byte(`{}`)))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sqlr, err := lag.NewSQLReader(env.DB, env.PubSub)
	if err != nil {
		t.Fatal(err)
	}
	c := lag.NewCollector(lag.NewKafkaReader(env.Config.KafkaBrokers),
		[]lag.Pair{{Topic: topic, Group: "rfd.backlog-reader"}},
		sqlr, lag.Pair{Topic: env.Config.TopicOutbox, Group: env.Config.ConsumerGroup("forwarder")}, slog.New(slog.DiscardHandler))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	want := `
# HELP rfd_outbox_backlog Outbox messages committed but not yet relayed to Kafka (always 0 on the SQL transport, where the outbox writes to the topics directly).
# TYPE rfd_outbox_backlog gauge
rfd_outbox_backlog 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "rfd_outbox_backlog"); err != nil {
		t.Fatal(err)
	}

	testenv.Run(t, env.NewRouter(t))
	testenv.Eventually(t, 60*time.Second, "outbox relayed, lag on Kafka", func() (bool, string) {
		mfs, err := reg.Gather()
		if err != nil {
			return false, err.Error()
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				got[mf.GetName()] += m.GetGauge().GetValue()
			}
		}
		return got["rfd_outbox_backlog"] == 0 && got["rfd_outbox_oldest_unrelayed_age_seconds"] == 0 &&
			got["rfd_consumer_lag_messages"] == 7 && got["rfd_lag_scrape_success"] == 1, fmt.Sprint(got)
	})
}
