package outbox

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/rfd-notify/rfd/internal/platform/logging"
	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
)

// ForwarderHandlerName is the name of the forwarder's handler on the router.
const ForwarderHandlerName = "events_forwarder"

// AddForwarder registers the relay from the outbox's forwarder topic to out
// (Kafka) as a handler of wr. It reads the topic in one consumer group, and
// the SQL subscriber locks that group's offset row (FOR UPDATE on
// PostgreSQL, which the Kafka transport requires) while it works, so any
// number of worker replicas can run it: one relays at a time, the others
// take over when it stops. A crash between the Kafka write and the offset
// commit relays that message again with the same message id, which the
// consumers' inbox absorbs.
func AddForwarder(wr *message.Router, ps *sqlpubsub.PubSub, out message.Publisher, forwarderTopic, consumerGroup string, logger *logging.WatermillLogger) error {
	inner, err := ps.Subscriber(consumerGroup)
	if err != nil {
		return fmt.Errorf("forwarder: subscriber: %w", err)
	}
	sub := newDrainingSubscriber(inner, drainTimeout)
	retry := middleware.Retry{
		MaxRetries:          5,
		InitialInterval:     100 * time.Millisecond,
		MaxInterval:         5 * time.Second,
		Multiplier:          2,
		RandomizationFactor: 0.2,
		Logger:              logger,
	}
	_, err = forwarder.NewForwarder(sub, out, logger, forwarder.Config{
		ForwarderTopic: forwarderTopic,
		Router:         wr,
		// Never poisoned: a message the relay cannot deliver yet is nacked
		// and retried until Kafka takes it.
		Middlewares: []message.HandlerMiddleware{middleware.Recoverer, retry.Middleware},
	})
	if err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	return nil
}

// drainTimeout bounds how long closing the relay waits for the message in
// hand to reach Kafka.
const drainTimeout = 30 * time.Second

// drainingSubscriber lets the relay stop without relaying anything twice.
// Watermill's SQL subscriber records a batch's offsets in the transaction it
// read them with, which its subscription context also governs: on a plain
// router shutdown that context is cancelled and the transaction rolled back,
// and a message already written to Kafka (or one whose ack raced the
// close) is relayed again by the next relay. This wrapper subscribes with a
// context that shutdown does not cancel and, on Close, stops handing out
// messages, waits for the one in hand to be acked or nacked, and only then
// closes the SQL subscriber, which commits the offsets acked so far.
type drainingSubscriber struct {
	message.Subscriber
	timeout time.Duration

	closeOnce sync.Once
	closing   chan struct{}
	mu        sync.Mutex
	stopped   []chan struct{} // one per subscription, closed when it ends
}

func newDrainingSubscriber(sub message.Subscriber, timeout time.Duration) *drainingSubscriber {
	return &drainingSubscriber{Subscriber: sub, timeout: timeout, closing: make(chan struct{})}
}

func (s *drainingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := s.Subscriber.Subscribe(context.WithoutCancel(ctx), topic)
	if err != nil {
		return nil, err
	}
	stopped := make(chan struct{})
	s.mu.Lock()
	s.stopped = append(s.stopped, stopped)
	s.mu.Unlock()
	out := make(chan *message.Message)
	go func() {
		defer close(stopped)
		defer close(out)
		for {
			// Closing wins over a message that is also ready.
			select {
			case <-s.closing:
				return
			default:
			}
			select {
			case <-s.closing:
				return
			case msg, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- msg:
				case <-s.closing:
					// Never handed out: the SQL subscriber sees it unacked
					// when it closes, and the next relay takes it.
					return
				}
				// The router acks or nacks every message it was handed.
				select {
				case <-msg.Acked():
				case <-msg.Nacked():
				}
			}
		}
	}()
	return out, nil
}

func (s *drainingSubscriber) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	deadline := time.After(s.timeout)
	for _, ch := range stopped {
		select {
		case <-ch:
		case <-deadline:
		}
	}
	return s.Subscriber.Close()
}
