// Package router is the one Watermill router of a process: every consumer
// and the outbox forwarder run as its handlers, behind the same middleware
// chain, over the SQL or the Kafka transport.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/internal/core/msgerr"
	"github.com/rfd-notify/rfd/internal/platform/logging"
)

const dependencyCheckTimeout = 2 * time.Second

// Options configure the middleware chain.
type Options struct {
	// PoisonTopic receives messages that failed permanently or exhausted
	// their retries.
	PoisonTopic string
	// RetryMaxAttempts is the number of attempts, the first one included.
	RetryMaxAttempts     int
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration
	// HandlerTimeout bounds one attempt.
	HandlerTimeout time.Duration
	// Throttle limits a handler to N messages per second, by handler name.
	Throttle map[string]int
	// CloseTimeout bounds how long Close waits for in-flight messages.
	CloseTimeout time.Duration
	// Dependencies, when set, is asked before a transient failure is
	// poisoned; if it fails, the message is nacked and redelivered instead.
	Dependencies func(context.Context) error
}

// Router wraps watermill's message.Router with the service's middleware.
type Router struct {
	r         *message.Router
	transport Transport
	opts      Options
	logger    *slog.Logger
	metrics   metrics.HandlerPrometheusMetricsMiddleware
	outcomes  *outcomes
	poison    message.HandlerMiddleware
	closing   atomic.Bool
}

// New builds the router. Metrics are registered in reg.
func New(opts Options, transport Transport, reg prometheus.Registerer, logger *slog.Logger) (*Router, error) {
	if opts.PoisonTopic == "" {
		return nil, errors.New("router: poison topic is empty")
	}
	if opts.RetryMaxAttempts < 1 {
		opts.RetryMaxAttempts = 1
	}
	wr, err := message.NewRouter(message.RouterConfig{CloseTimeout: opts.CloseTimeout}, logging.NewWatermill(logger))
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	builder := metrics.NewPrometheusMetricsBuilder(reg, "rfd", "")
	wr.AddPublisherDecorators(builder.DecoratePublisher)
	wr.AddSubscriberDecorators(builder.DecorateSubscriber)

	oc, err := newOutcomes(reg)
	if err != nil {
		return nil, err
	}
	rt := &Router{
		outcomes:  oc,
		r:         wr,
		transport: transport,
		opts:      opts,
		logger:    logger,
		metrics:   builder.NewRouterMiddleware(),
	}
	rt.poison, err = middleware.PoisonQueueWithFilter(poisonIDs{transport.Publisher()}, opts.PoisonTopic,
		poisonFilter(rt.closing.Load, opts.Dependencies))
	if err != nil {
		return nil, fmt.Errorf("router: poison queue: %w", err)
	}
	return rt, nil
}

// Watermill exposes the underlying router, for components such as the
// forwarder that register their own handler on it.
func (rt *Router) Watermill() *message.Router { return rt.r }

// Transport is the transport the router consumes from.
func (rt *Router) Transport() Transport { return rt.transport }

// Handler is one consumer. Handle does its work through the inbox and the
// outbox and returns an error to fail the attempt: wrap it with
// msgerr.Permanent when retrying cannot help.
type Handler struct {
	Name          string
	Topic         string
	ConsumerGroup string
	Handle        func(msg *message.Message) error
	// NoPoison keeps a failing message out of the poison topic: it is
	// nacked and redelivered instead. The poison drain itself uses it, so a
	// message it cannot store never loops back into its own topic.
	NoPoison bool
}

// AddConsumer registers h behind the middleware chain, outermost first:
// correlation id, recoverer, metrics, poison queue, outcome counts, retry,
// timeout, throttle.
// A few small steps sit between them: detach (shutdown lets the message
// finish), the logger in the context, the poison class, the attempt counter,
// an inner recoverer that makes a panic a permanent failure, and
// permanentText, which does the same for text the database refuses.
func (rt *Router) AddConsumer(h Handler) error {
	sub, err := rt.transport.Subscriber(h.ConsumerGroup)
	if err != nil {
		return fmt.Errorf("router: subscriber for %s: %w", h.Name, err)
	}
	handle := h.Handle
	wh := rt.r.AddConsumerHandler(h.Name, h.Topic, sub, func(msg *message.Message) error {
		return handle(msg)
	})

	retry := middleware.Retry{
		MaxRetries:          rt.opts.RetryMaxAttempts - 1,
		InitialInterval:     rt.opts.RetryInitialInterval,
		MaxInterval:         rt.opts.RetryMaxInterval,
		Multiplier:          2,
		RandomizationFactor: 0.2,
		ShouldRetry: func(p middleware.RetryParams) bool {
			return !msgerr.IsPermanent(p.Err) && !rt.closing.Load()
		},
		ResetContextOnRetry: true,
		Logger:              logging.NewWatermill(rt.logger),
	}

	chain := []message.HandlerMiddleware{
		detach,
		traced(h),
		correlate,
		middleware.Recoverer,
		withLogger(rt.logger.With("handler", h.Name)),
		rt.metrics.Middleware,
	}
	if !h.NoPoison {
		chain = append(chain, rt.poison)
	}
	chain = append(chain, rt.outcomes.middleware(h.Name))
	if !h.NoPoison {
		chain = append(chain, classify)
	}
	chain = append(chain, retry.Middleware)
	if !h.NoPoison {
		// The count travels with a poisoned message; the poison drain
		// must store it as it came, not count its own attempt on top.
		// Only a handler whose failures are poisoned gains from giving up
		// at once; the poison drain stores any text.
		chain = append(chain, countAttempts, permanentText)
	}
	chain = append(chain,
		recoverPermanent,
		middleware.Timeout(rt.opts.HandlerTimeout),
	)
	if n := rt.opts.Throttle[h.Name]; n > 0 {
		chain = append(chain, middleware.NewThrottle(int64(n), time.Second).Middleware)
	}
	wh.AddMiddleware(chain...)
	return nil
}

func withLogger(l *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			msg.SetContext(logging.WithLogger(msg.Context(), l))
			return h(msg)
		}
	}
}

// Run runs every handler until ctx is done or Close is called.
func (rt *Router) Run(ctx context.Context) error {
	err := rt.r.Run(ctx)
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	return nil
}

// Running is closed once every handler is subscribed.
func (rt *Router) Running() chan struct{} { return rt.r.Running() }

// IsRunning reports whether the router is running.
func (rt *Router) IsRunning() bool { return rt.r.IsRunning() }

// Close stops taking messages, waits up to the close timeout for in-flight
// ones, and closes the subscribers. Failures from now on are nacked, not
// poisoned: the next process gets the message.
func (rt *Router) Close() error {
	rt.closing.Store(true)
	return rt.r.Close()
}

// poisonIDs gives every message it publishes to the poison topic an id of
// its own (PoisonIDKey). The same message poisoned twice is two poisonings;
// a redelivery of one poison record is the same poisoning, and the poison
// drain's inbox dedupes it by this id.
type poisonIDs struct{ message.Publisher }

func (p poisonIDs) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		m.Metadata.Set(PoisonIDKey, watermill.NewUUID())
	}
	return p.Publisher.Publish(topic, msgs...)
}
