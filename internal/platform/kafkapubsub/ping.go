package kafkapubsub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// pingTimeout bounds a Ping whose context has no deadline.
const pingTimeout = 5 * time.Second

// Ping reports whether at least one of brokers answers an ApiVersions
// request, the cheapest round trip of the protocol; a metadata request would
// list every topic of the cluster on each readiness probe. It returns when
// ctx is done even if a connection attempt is still pending.
func Ping(ctx context.Context, brokers []string) error {
	if len(brokers) == 0 {
		return errors.New("kafka ping: no brokers configured")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafka ping: %w", err)
	}

	timeout := pingTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
	}
	sc := sarama.NewConfig()
	sc.Version = saramaVersion
	sc.ClientID = defaultClientID + "-ping"
	// Bound the I/O as well as the wait below, so an abandoned attempt
	// does not keep a socket open long after the caller gave up.
	sc.Net.DialTimeout = timeout
	sc.Net.ReadTimeout = timeout
	sc.Net.WriteTimeout = timeout

	done := make(chan error, 1)
	go func() { done <- pingAny(brokers, sc) }()

	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("kafka ping: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka ping: %w", ctx.Err())
	}
}

// pingAny tries brokers in order and stops at the first that answers.
func pingAny(brokers []string, sc *sarama.Config) error {
	var errs []error
	for _, addr := range brokers {
		err := pingBroker(addr, sc)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return errors.Join(errs...)
}

func pingBroker(addr string, sc *sarama.Config) error {
	b := sarama.NewBroker(addr)
	if err := b.Open(sc); err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer func() { _ = b.Close() }()

	// Open connects in the background; Connected waits for that attempt.
	if _, err := b.Connected(); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// Version 0 carries no client software fields, which some brokers
	// validate; any answer proves the broker serves requests.
	if _, err := b.ApiVersions(&sarama.ApiVersionsRequest{Version: 0}); err != nil {
		return fmt.Errorf("api versions: %w", err)
	}
	return nil
}
