package router

import (
	"context"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
)

// SQLTransport keeps topics as tables in the service's own database
// (watermill-sql): the embedded default, and an option on PostgreSQL for
// sites without Kafka.
type SQLTransport struct {
	db     *bun.DB
	ps     *sqlpubsub.PubSub
	once   sync.Once
	pub    message.Publisher
	pubErr error
}

// NewSQLTransport returns the SQL transport over ps.
func NewSQLTransport(db *bun.DB, ps *sqlpubsub.PubSub) *SQLTransport {
	return &SQLTransport{db: db, ps: ps}
}

// Name is "sql".
func (t *SQLTransport) Name() string { return "sql" }

// Publisher publishes outside any transaction (autocommit).
func (t *SQLTransport) Publisher() message.Publisher {
	t.once.Do(func() { t.pub, t.pubErr = t.ps.Publisher() })
	if t.pubErr != nil {
		return failingPublisher{t.pubErr}
	}
	return t.pub
}

// Subscriber returns a subscriber in group.
func (t *SQLTransport) Subscriber(group string) (message.Subscriber, error) {
	return t.ps.Subscriber(group)
}

// Ping checks the database the topics live in.
func (t *SQLTransport) Ping(ctx context.Context) error {
	if err := t.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sql transport: %w", err)
	}
	return nil
}

// Close closes nothing of its own: the database belongs to the store.
func (t *SQLTransport) Close() error {
	if t.pub != nil {
		return t.pub.Close()
	}
	return nil
}

type failingPublisher struct{ err error }

func (f failingPublisher) Publish(string, ...*message.Message) error { return f.err }
func (f failingPublisher) Close() error                              { return nil }
