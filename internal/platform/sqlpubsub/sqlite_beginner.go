package sqlpubsub

import (
	"context"
	stdsql "database/sql"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
)

// Why SQLite subscribers need their own sql.Beginner
//
// watermill-sql's Subscriber opens one transaction per batch and keeps it
// open from the SELECT, through the handler, to the INSERT of the acked
// offset. On PostgreSQL that transaction holds the consumer group's offsets
// row FOR UPDATE, which is what keeps two subscribers of one group from
// reading the same batch.
//
// On SQLite (WAL) that transaction cannot work once the handler writes:
//   - a deferred transaction reads first, so its snapshot predates the
//     handler's own write transaction (on another connection); the ack INSERT
//     must then upgrade a stale read transaction to a write one, which SQLite
//     refuses with SQLITE_BUSY_SNAPSHOT, busy_timeout or not;
//   - BEGIN IMMEDIATE takes the single write lock up front, so the handler's
//     write waits for the subscriber, which waits for the handler to ack: a
//     deadlock until busy_timeout fails the handler.
//
// SQLiteSubscriberBeginner hands the subscriber a "transaction" that runs
// every statement in autocommit on the *sql.DB, so the subscriber never holds
// a snapshot or the write lock while the handler runs. What FOR UPDATE gave,
// it gives with an in-process lock per (topic, consumer group), taken at
// BeginTx and released at Commit or Rollback. Nothing is lost by dropping the
// real transaction: the subscriber's only write is the ack, its last
// statement, so there is nothing for a rollback to undo.
//
// The lock is in-process only. That is enough because the SQLite mode is
// single-process by design (`rfd serve` runs everything in one process over
// one database file); two processes consuming the same SQLite topic in the
// same consumer group would not exclude each other and could both deliver
// the same message.

// SQLiteSubscriberBeginner is the sql.Beginner a watermill-sql subscriber
// must use on SQLite (see the comment at the top of this file). Use it for
// one topic: the lock is per (topic, consumer group), as PostgreSQL's row lock
// is per row of the topic's offsets table. Sharing one lock across topics
// would let a message of one topic waiting for its handler stall the others.
// The lock is shared by every beginner of the same *sql.DB, topic and group.
type SQLiteSubscriberBeginner struct {
	db   *stdsql.DB
	lock groupLock
	stop <-chan struct{}
	// watch, when set (by the PubSub's subscribers), takes the waker's
	// snapshot as each poll begins (see waker.go).
	watch *pollWatch
}

var _ sql.Beginner = (*SQLiteSubscriberBeginner)(nil)

// NewSQLiteSubscriberBeginner returns the beginner for subscribers of topic
// in consumerGroup on db. Closing stop (may be nil) makes a BeginTx that is
// waiting for the group's lock give up with ErrSubscriberStopping; close it
// before closing the subscriber, whose Close otherwise waits until the lock
// holder's message is acked or its AckDeadline passes.
func NewSQLiteSubscriberBeginner(db *stdsql.DB, topic, consumerGroup string, stop <-chan struct{}) *SQLiteSubscriberBeginner {
	return &SQLiteSubscriberBeginner{
		db:   db,
		lock: lockOf(db, topic, consumerGroup),
		stop: stop,
	}
}

// BeginTx waits for the consumer group's lock and returns a Tx whose
// statements run in autocommit. The isolation level is ignored: each
// statement is its own (serializable) SQLite transaction.
func (b *SQLiteSubscriberBeginner) BeginTx(ctx context.Context, _ *stdsql.TxOptions) (sql.Tx, error) {
	if err := b.lock.acquire(ctx, b.stop); err != nil {
		return nil, err
	}
	// After the lock, which may take a while, but before the poll's SELECT:
	// whatever commits after this wakes the wait that follows an empty poll.
	if b.watch != nil {
		b.watch.begin()
	}
	return &sqliteSubscriberTx{db: b.db, lock: b.lock}, nil
}

// ExecContext runs query in autocommit. watermill-sql uses it to create the
// topic's tables.
func (b *SQLiteSubscriberBeginner) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := b.db.ExecContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// QueryContext runs query in autocommit.
func (b *SQLiteSubscriberBeginner) QueryContext(ctx context.Context, query string, args ...any) (sql.Rows, error) {
	rows, err := b.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// sqliteSubscriberTx is the subscriber's stand-in for a transaction: it holds
// the consumer group's lock and runs statements in autocommit. A handler that
// takes it from sql.TxFromContext therefore gets no atomicity with the ack;
// handlers should open their own transaction (and be idempotent, as the ack
// may be lost after they commit).
type sqliteSubscriberTx struct {
	db   *stdsql.DB
	lock groupLock
	done atomic.Bool
}

func (t *sqliteSubscriberTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if t.done.Load() {
		return nil, stdsql.ErrTxDone
	}
	res, err := t.db.ExecContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (t *sqliteSubscriberTx) QueryContext(ctx context.Context, query string, args ...any) (sql.Rows, error) {
	if t.done.Load() {
		return nil, stdsql.ErrTxDone
	}
	rows, err := t.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// Commit releases the consumer group's lock; the statements are committed
// already.
func (t *sqliteSubscriberTx) Commit() error { return t.finish() }

// Rollback releases the consumer group's lock. It cannot undo a statement,
// which is fine for the subscriber: it rolls back only when something failed
// before or during the ack, its single write.
func (t *sqliteSubscriberTx) Rollback() error { return t.finish() }

func (t *sqliteSubscriberTx) finish() error {
	if !t.done.CompareAndSwap(false, true) {
		return stdsql.ErrTxDone
	}
	t.lock.release()
	return nil
}
