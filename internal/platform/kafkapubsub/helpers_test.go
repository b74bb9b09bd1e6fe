package kafkapubsub_test

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/rfd-notify/rfd/internal/platform/kafkapubsub"
)

// testLogger is silent unless KAFKAPUBSUB_TEST_LOG is set: watermill-kafka
// logs every join and reconnect at info level.
func testLogger() watermill.LoggerAdapter {
	if os.Getenv("KAFKAPUBSUB_TEST_LOG") == "" {
		return watermill.NopLogger{}
	}
	return watermill.NewSlogLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

// testConfig shortens the group timings so that rebalances, which every
// new or closed subscriber triggers, take milliseconds instead of seconds.
func testConfig(brokers []string) kafkapubsub.Config {
	return kafkapubsub.Config{
		Brokers:             brokers,
		ClientID:            "kafkapubsub-test",
		SessionTimeout:      6 * time.Second,
		HeartbeatInterval:   100 * time.Millisecond,
		RebalanceTimeout:    5 * time.Second,
		NackResendSleep:     10 * time.Millisecond,
		ReconnectRetrySleep: 100 * time.Millisecond,
	}
}

func newPubSub(t *testing.T, cfg kafkapubsub.Config, group string) (message.Publisher, message.Subscriber) {
	t.Helper()
	pub, err := kafkapubsub.NewPublisher(cfg, testLogger())
	require.NoError(t, err)
	sub, err := kafkapubsub.NewSubscriber(cfg, group, testLogger())
	require.NoError(t, err)
	return pub, sub
}

// receive reads one message or fails the test after timeout.
func receive(t *testing.T, msgs <-chan *message.Message, timeout time.Duration) *message.Message {
	t.Helper()
	select {
	case msg, ok := <-msgs:
		require.True(t, ok, "messages channel closed")
		return msg
	case <-time.After(timeout):
		t.Fatalf("no message within %s", timeout)
		return nil
	}
}
