package sqlpubsub_test

import (
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
)

// features are what both backends guarantee; the suite skips what they
// don't claim.
var features = tests.Features{
	// Each group keeps its own offset per topic; groups don't affect each
	// other.
	ConsumerGroups: true,
	// A group is held (FOR UPDATE on PostgreSQL, the in-process lock on
	// SQLite) from reading a batch to writing its ack, so no two subscribers
	// of a group get the same message. Redelivery needs a crash between a
	// handler's ack and the offset write, which the suite doesn't cause.
	// Claiming it makes the suite skip TestContinueAfterSubscribeClose and
	// TestConcurrentClose ("not supported yet" there), which is why
	// TestUniversalAtLeastOnce runs those two without the claim.
	ExactlyOnceDelivery: true,
	// Offsets are read in commit order (xid8 on PostgreSQL, the single
	// writer on SQLite) and a group delivers one message at a time.
	GuaranteedOrder: true,
	// Messages are rows; they outlive publishers and subscribers.
	Persistent: true,
	// Left false: a new subscriber joins its group at the group's offset, it
	// doesn't replay what the group consumed (Kafka-style per-subscriber
	// replay is not what this transport is). The suite skips the test.
	NewSubscriberReceivesOldMessages: false,
	// Left empty, so the suite skips TestReconnect: PostgreSQL is a server
	// shared with every other package's tests, restarting it would break
	// them; SQLite is an embedded file, with no service to restart.
	RestartServiceCommand: nil,
}

// pubSubsPerTest gives each (sub)test its own database, created on the
// first constructor call of that test and reused by its later calls: the
// suite calls the constructors several times per test and expects them to
// share published messages and consumer-group offsets.
type pubSubsPerTest struct {
	b      backend
	logger recordingLogger

	mu  sync.Mutex
	byT map[*testing.T]*testPubSub
}

type testPubSub struct {
	ps   *sqlpubsub.PubSub
	subs []message.Subscriber
}

func newPubSubsPerTest(b backend) *pubSubsPerTest {
	return &pubSubsPerTest{b: b, logger: newRecordingLogger(), byT: map[*testing.T]*testPubSub{}}
}

func (p *pubSubsPerTest) pair(t *testing.T, consumerGroup string) (message.Publisher, message.Subscriber) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tp, ok := p.byT[t]
	if !ok {
		tp = &testPubSub{ps: newPubSub(t, p.b.open(t), p.logger)}
		p.byT[t] = tp
		// Runs before the database is closed. Some suite tests leave
		// subscribers open (TestPublishSubscribeInOrder defers
		// require.NoError(t, sub.Close()), which closes before subscribing);
		// closing them here keeps them from polling a closed database.
		t.Cleanup(func() {
			p.mu.Lock()
			delete(p.byT, t)
			p.mu.Unlock()
			for _, sub := range tp.subs {
				_ = sub.Close()
			}
		})
	}
	pub, sub := pubSubPair(t, tp.ps, consumerGroup)
	tp.subs = append(tp.subs, sub)
	return pub, sub
}

func (p *pubSubsPerTest) constructor(t *testing.T) (message.Publisher, message.Subscriber) {
	return p.pair(t, "test")
}

func (p *pubSubsPerTest) groupConstructor(t *testing.T, consumerGroup string) (message.Publisher, message.Subscriber) {
	return p.pair(t, consumerGroup)
}

// TestUniversal runs watermill's universal Pub/Sub suite on both backends.
func TestUniversal(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		p := newPubSubsPerTest(b)
		requireNoTransportErrors(t, p.logger)
		tests.TestPubSub(t, features, p.constructor, p.groupConstructor)
	})
}

// TestUniversalAtLeastOnce runs the two suite tests that claiming
// ExactlyOnceDelivery skips. Without the claim they check the weaker
// at-least-once property (duplicates are tolerated, losses are not), which
// still holds and is worth checking: subscribers closed mid-stream, and
// closed concurrently, lose nothing.
func TestUniversalAtLeastOnce(t *testing.T) {
	atLeastOnce := features
	atLeastOnce.ExactlyOnceDelivery = false

	forEachBackend(t, func(t *testing.T, b backend) {
		p := newPubSubsPerTest(b)
		requireNoTransportErrors(t, p.logger)
		for name, test := range map[string]func(*testing.T, tests.TestContext, tests.PubSubConstructor){
			"TestContinueAfterSubscribeClose": tests.TestContinueAfterSubscribeClose,
			"TestConcurrentClose":             tests.TestConcurrentClose,
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				test(t, tests.TestContext{TestID: tests.NewTestID(), Features: atLeastOnce}, p.constructor)
			})
		}
	})
}

// requireNoTransportErrors fails t if, once its subtests are done, the
// transport logged any error. The suite's assertions can pass through
// retries (a failed query is simply tried again); on SQLite an error would
// typically be SQLITE_BUSY, exactly what this transport is built to avoid.
func requireNoTransportErrors(t *testing.T, logger recordingLogger) {
	t.Cleanup(func() {
		for _, e := range logger.Errors() {
			t.Error("transport logged an error:", e)
		}
	})
}
