// Package sqlpubsub is the SQL transport: watermill-sql (v4) over the
// service's own database, PostgreSQL or SQLite, behind one constructor.
//
// On PostgreSQL it is watermill-sql's default schema and offsets adapter
// (payload stored as BYTEA, since payloads need not be JSON), with the
// consumer group's offsets row locked FOR UPDATE from read to ack. On SQLite
// it is SQLiteSchema and SQLiteOffsetsAdapter, with SQLiteSubscriberBeginner
// in place of a real transaction for subscribers (see sqlite_beginner.go for
// why); the SQLite mode is single-process by design. On both, subscribers of
// a group within the process also queue on an in-process lock (see
// group_lock.go). On SQLite, a commit that may carry messages also wakes the
// process's waiting subscribers instead of leaving them to their next poll
// (see waker.go).
package sqlpubsub

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Options tune the publishers and subscribers of a PubSub. Zero values take
// the defaults.
type Options struct {
	// PollInterval is how long a subscriber waits before querying again
	// after finding no message. Default 1s.
	PollInterval time.Duration

	// ResendInterval is how long a subscriber waits before redelivering a
	// nacked message. Default 1s.
	ResendInterval time.Duration

	// BatchSize is the number of messages a subscriber reads per query. The
	// not-yet-acked rest of a batch is delivered again after a crash.
	// Default 100.
	BatchSize int

	// AckDeadline is how long a subscriber waits for a handler to ack or
	// nack before giving the message up for redelivery. Default 30s. It
	// cannot be disabled here: the subscriber holds its consumer group
	// (and, on PostgreSQL, the snapshot horizon every subscriber reads
	// below) until the message is acked, so an unbounded wait could stall
	// the whole transport.
	AckDeadline time.Duration

	// SkipSchemaInitialization stops publishers and subscribers from
	// creating topic tables on first use; tables must then exist, for
	// example through InitializeTopic. By default they are created.
	SkipSchemaInitialization bool
}

func (o Options) validate() error {
	switch {
	case o.PollInterval < 0:
		return errors.New("poll interval is negative")
	case o.ResendInterval < 0:
		return errors.New("resend interval is negative")
	case o.BatchSize < 0:
		return errors.New("batch size is negative")
	case o.AckDeadline < 0:
		return errors.New("ack deadline is negative")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.PollInterval == 0 {
		o.PollInterval = time.Second
	}
	if o.ResendInterval == 0 {
		o.ResendInterval = time.Second
	}
	if o.BatchSize == 0 {
		o.BatchSize = 100
	}
	if o.AckDeadline == 0 {
		o.AckDeadline = 30 * time.Second
	}
	return o
}

// PubSub builds watermill-sql publishers and subscribers for one database.
type PubSub struct {
	db      *bun.DB
	sqlite  bool
	schema  sql.SchemaAdapter
	offsets sql.OffsetsAdapter
	opts    Options
	logger  watermill.LoggerAdapter
	// waker is the database's on SQLite, nil on PostgreSQL.
	waker *waker
}

// New returns the PubSub of db, picking the adapters by db's dialect
// (PostgreSQL or SQLite). A nil logger logs nothing. On SQLite, the first New
// for a db adds a query hook to it, so call it before other goroutines use db
// (as the process's wiring does).
func New(db *bun.DB, logger watermill.LoggerAdapter, opts Options) (*PubSub, error) {
	if db == nil {
		return nil, errors.New("sqlpubsub: db is nil")
	}
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("sqlpubsub: invalid options: %w", err)
	}
	opts = opts.withDefaults()
	if logger == nil {
		logger = watermill.NopLogger{}
	}

	p := &PubSub{db: db, opts: opts, logger: logger}
	switch name := db.Dialect().Name(); name {
	case dialect.PG:
		p.schema = postgresSchema{sql.DefaultPostgreSQLSchema{
			// Payloads are bytes, not necessarily JSON (a poison message
			// is exactly one that does not decode).
			GeneratePayloadType: func(string) string { return "BYTEA" },
			SubscribeBatchSize:  opts.BatchSize,
		}}
		p.offsets = sql.DefaultPostgreSQLOffsetsAdapter{}
	case dialect.SQLite:
		p.sqlite = true
		p.schema = SQLiteSchema{SubscribeBatchSize: opts.BatchSize}
		p.offsets = SQLiteOffsetsAdapter{}
		p.waker = wakerOf(db)
	default:
		return nil, fmt.Errorf("sqlpubsub: unsupported database dialect %s (want pg or sqlite)", name)
	}
	return p, nil
}

// SchemaAdapter is the schema adapter in use.
func (p *PubSub) SchemaAdapter() sql.SchemaAdapter { return p.schema }

// OffsetsAdapter is the offsets adapter in use.
func (p *PubSub) OffsetsAdapter() sql.OffsetsAdapter { return p.offsets }

// Publisher returns a publisher writing in autocommit: each Publish is its
// own transaction. On SQLite, each Publish wakes the topic's subscribers.
func (p *PubSub) Publisher() (message.Publisher, error) {
	pub, err := sql.NewPublisher(sql.BeginnerFromStdSQL(p.db.DB), sql.PublisherConfig{
		SchemaAdapter:        p.schema,
		AutoInitializeSchema: !p.opts.SkipSchemaInitialization,
	}, p.logger)
	if err != nil {
		return nil, fmt.Errorf("sqlpubsub: new publisher: %w", err)
	}
	if p.waker != nil {
		return wakingPublisher{Publisher: pub, waker: p.waker}, nil
	}
	return pub, nil
}

// TxPublisher returns a publisher writing inside tx (for bun, pass
// bunTx.Tx): the messages exist if and only if tx commits. It never creates
// tables, since DDL inside the caller's transaction would take locks (on
// PostgreSQL) or the write lock early (on SQLite) for the rest of it; create
// the topic with InitializeTopic beforehand, or Publish fails. On SQLite,
// committing tx through bun (bun.Tx.Commit, RunInTx) wakes the topics'
// subscribers; committing the *sql.Tx directly leaves them to the next bun
// commit or their next poll.
func (p *PubSub) TxPublisher(tx *stdsql.Tx) (message.Publisher, error) {
	if tx == nil {
		return nil, errors.New("sqlpubsub: tx publisher needs a transaction")
	}
	pub, err := sql.NewPublisher(sql.TxFromStdSQL(tx), sql.PublisherConfig{
		SchemaAdapter:        p.schema,
		AutoInitializeSchema: false,
	}, p.logger)
	if err != nil {
		return nil, fmt.Errorf("sqlpubsub: new tx publisher: %w", err)
	}
	if p.waker != nil {
		return markingPublisher{Publisher: pub, waker: p.waker}, nil
	}
	return pub, nil
}

// Subscriber returns a subscriber reading in consumerGroup. Subscribers of
// one group share the work: each message is delivered to one of them, in
// order, and once (barring a crash between the handler's ack and the offset
// write). On SQLite, only subscribers of the same process exclude each other.
func (p *PubSub) Subscriber(consumerGroup string) (message.Subscriber, error) {
	return newGroupSubscriber(p, consumerGroup), nil
}

func (p *PubSub) subscriberConfig(consumerGroup string) sql.SubscriberConfig {
	ackDeadline := p.opts.AckDeadline
	return sql.SubscriberConfig{
		ConsumerGroup:    consumerGroup,
		AckDeadline:      &ackDeadline,
		PollInterval:     p.opts.PollInterval,
		ResendInterval:   p.opts.ResendInterval,
		SchemaAdapter:    p.schema,
		OffsetsAdapter:   p.offsets,
		InitializeSchema: !p.opts.SkipSchemaInitialization,
	}
}

// InitializeTopic creates topic's messages and offsets tables if missing, so
// that tx publishers can write to it. It is idempotent and safe to run
// concurrently (on PostgreSQL the queries include watermill-sql's advisory
// lock, since CREATE TABLE IF NOT EXISTS alone can race).
func (p *PubSub) InitializeTopic(ctx context.Context, topic string) error {
	if err := validateTopic(topic); err != nil {
		return err
	}
	queries, err := p.schema.SchemaInitializingQueries(sql.SchemaInitializingQueriesParams{Topic: topic})
	if err != nil {
		return fmt.Errorf("sqlpubsub: schema queries for topic %s: %w", topic, err)
	}
	offsetQueries, err := p.offsets.SchemaInitializingQueries(sql.OffsetsSchemaInitializingQueriesParams{Topic: topic})
	if err != nil {
		return fmt.Errorf("sqlpubsub: offsets schema queries for topic %s: %w", topic, err)
	}
	queries = append(queries, offsetQueries...)

	// One transaction, because pg_advisory_xact_lock is held until its end.
	tx, err := p.db.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlpubsub: initialize topic %s: begin: %w", topic, err)
	}
	for _, q := range queries {
		if _, err := tx.ExecContext(ctx, q.Query, q.Args...); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("sqlpubsub: initialize topic %s: %w", topic, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlpubsub: initialize topic %s: commit: %w", topic, err)
	}
	return nil
}

// disallowedTopicCharacters is watermill-sql's rule (unexported there): a
// topic becomes part of table names spliced into queries, so anything but
// these characters could inject SQL.
var disallowedTopicCharacters = regexp.MustCompile(`[^A-Za-z0-9\-\$\:\.\_]`)

func validateTopic(topic string) error {
	if topic == "" || disallowedTopicCharacters.MatchString(topic) {
		return fmt.Errorf("sqlpubsub: topic %q: %w", topic, sql.ErrInvalidTopicName)
	}
	return nil
}
