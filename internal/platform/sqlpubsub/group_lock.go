package sqlpubsub

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Subscribers of one consumer group must not read the same batch. Within a
// process, both dialects serialize them with an in-process lock per (topic,
// consumer group), held from the start of a batch to its ack:
//   - on SQLite it is the only exclusion there is (see sqlite_beginner.go);
//   - on PostgreSQL the offsets row's FOR UPDATE still excludes other
//     processes; the in-process lock only keeps this process's subscribers
//     from each holding a pooled connection (and an open transaction) while
//     they queue for that row lock. With a bounded pool, enough subscribers
//     of one group could otherwise take every connection while the holder's
//     handler waits for one: a deadlock until the ack deadline.
// Waiting for the in-process lock can also be abandoned when a subscriber
// closes, where a wait on a row lock cannot.

// ErrSubscriberStopping is returned by BeginTx when the subscriber was
// closed while waiting for its consumer group's lock.
var ErrSubscriberStopping = errors.New("sqlpubsub: subscriber is stopping")

// groupLock is a mutex that can be waited for with a way out: a channel with
// room for one token.
type groupLock chan struct{}

func (l groupLock) acquire(ctx context.Context, stop <-chan struct{}) error {
	// Checked first so that a stopped subscriber never wins the lock by
	// chance of select.
	select {
	case <-stop:
		return ErrSubscriberStopping
	default:
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wait for consumer group lock: %w", err)
	}
	select {
	case l <- struct{}{}:
		return nil
	case <-stop:
		return ErrSubscriberStopping
	case <-ctx.Done():
		return fmt.Errorf("wait for consumer group lock: %w", ctx.Err())
	}
}

func (l groupLock) release() { <-l }

type groupLockKey struct {
	topic         string
	consumerGroup string
}

// groupLocks holds, per *sql.DB, one lock per (topic, consumer group). It is
// keyed by the database rather than owned by a PubSub so that subscribers of
// one database exclude each other however many PubSub values were built on
// it. Entries live as long as the process, which opens one database.
var groupLocks = struct {
	mu   sync.Mutex
	byDB map[*stdsql.DB]map[groupLockKey]groupLock
}{byDB: map[*stdsql.DB]map[groupLockKey]groupLock{}}

func lockOf(db *stdsql.DB, topic, consumerGroup string) groupLock {
	groupLocks.mu.Lock()
	defer groupLocks.mu.Unlock()
	locks := groupLocks.byDB[db]
	if locks == nil {
		locks = map[groupLockKey]groupLock{}
		groupLocks.byDB[db] = locks
	}
	key := groupLockKey{topic: topic, consumerGroup: consumerGroup}
	lock := locks[key]
	if lock == nil {
		lock = make(groupLock, 1)
		locks[key] = lock
	}
	return lock
}

// postgresSubscriberBeginner is watermill-sql's standard beginner with the
// in-process group lock in front. Only the subscriber's batch transaction
// takes the lock: watermill-sql begins it with the schema's isolation level,
// while its other transactions (schema creation, the "zero offsets" insert
// before subscribing) pass nil options and must not queue behind a batch
// whose handler is waiting for a reader that has not subscribed yet.
type postgresSubscriberBeginner struct {
	sql.Beginner
	lock groupLock
	stop <-chan struct{}
}

func (b postgresSubscriberBeginner) BeginTx(ctx context.Context, opts *stdsql.TxOptions) (sql.Tx, error) {
	if opts == nil {
		return b.Beginner.BeginTx(ctx, nil)
	}
	if err := b.lock.acquire(ctx, b.stop); err != nil {
		return nil, err
	}
	tx, err := b.Beginner.BeginTx(ctx, opts)
	if err != nil {
		b.lock.release()
		return nil, err
	}
	return &lockedTx{Tx: tx, lock: b.lock}, nil
}

// lockedTx releases the group lock when the transaction ends.
type lockedTx struct {
	sql.Tx
	lock     groupLock
	released atomic.Bool
}

func (t *lockedTx) Commit() error {
	err := t.Tx.Commit()
	t.release()
	return err
}

func (t *lockedTx) Rollback() error {
	err := t.Tx.Rollback()
	t.release()
	return err
}

func (t *lockedTx) release() {
	if t.released.CompareAndSwap(false, true) {
		t.lock.release()
	}
}

// groupSubscriber is the message.Subscriber of both dialects. Every
// Subscribe gets its own watermill-sql subscriber, because the group lock its
// beginner takes is per topic: one lock across topics would let a message of
// one topic waiting for its handler stall the subscriber's other topics.
type groupSubscriber struct {
	ps            *PubSub
	consumerGroup string
	// stop is closed by Close before the watermill subscribers, so that those
	// waiting for their group's lock give up instead of keeping Close waiting
	// for another subscriber's handler.
	stop chan struct{}

	mu     sync.Mutex
	closed bool
	subs   []*sql.Subscriber
	// forwarding counts the goroutines that pass each subscription's
	// messages on; Close waits for them, so that every channel Subscribe
	// returned is closed when Close returns.
	forwarding sync.WaitGroup
}

var (
	_ message.Subscriber           = (*groupSubscriber)(nil)
	_ message.SubscribeInitializer = (*groupSubscriber)(nil)
)

func newGroupSubscriber(ps *PubSub, consumerGroup string) *groupSubscriber {
	return &groupSubscriber{ps: ps, consumerGroup: consumerGroup, stop: make(chan struct{})}
}

// beginner and backoff return the beginner and the backoff manager of one
// Subscribe: on SQLite they share watch (nil on PostgreSQL), the beginner
// taking the snapshot of the topic's broadcast as each poll begins and the
// backoff waiting on it after a poll that found nothing (see waker.go).
func (s *groupSubscriber) beginner(topic string, watch *pollWatch) sql.Beginner {
	db := s.ps.db.DB
	if s.ps.sqlite {
		b := NewSQLiteSubscriberBeginner(db, topic, s.consumerGroup, s.stop)
		b.watch = watch
		return b
	}
	return postgresSubscriberBeginner{
		Beginner: sql.BeginnerFromStdSQL(db),
		lock:     lockOf(db, topic, s.consumerGroup),
		stop:     s.stop,
	}
}

func (s *groupSubscriber) backoff(ctx context.Context, config sql.SubscriberConfig, watch *pollWatch) sql.BackoffManager {
	quiet := stopQuietBackoff{
		BackoffManager: sql.NewDefaultBackoffManager(config.PollInterval, config.RetryInterval),
		wait:           config.PollInterval,
	}
	if watch == nil {
		return quiet
	}
	return wakingBackoff{
		stopQuietBackoff: quiet,
		watch:            watch,
		poll:             config.PollInterval,
		stop:             s.stop,
		done:             ctx.Done(),
	}
}

func (s *groupSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := validateTopic(topic); err != nil {
		return nil, err
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, sql.ErrSubscriberClosed
	}
	config := s.ps.subscriberConfig(s.consumerGroup)
	var watch *pollWatch
	if s.ps.waker != nil {
		watch = &pollWatch{waker: s.ps.waker, topic: topic}
	}
	config.BackoffManager = s.backoff(ctx, config, watch)
	sub, err := sql.NewSubscriber(s.beginner(topic, watch), config, stopQuietLogger{s.ps.logger})
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("sqlpubsub: new subscriber for topic %s: %w", topic, err)
	}
	s.subs = append(s.subs, sub)
	s.forwarding.Add(1)
	s.mu.Unlock()

	in, err := sub.Subscribe(ctx, topic)
	if err != nil {
		s.forwarding.Done()
		return nil, fmt.Errorf("sqlpubsub: subscribe to topic %s: %w", topic, err)
	}
	out := make(chan *message.Message)
	go s.forward(ctx, in, out)
	return out, nil
}

// forward passes in's messages on to out and closes out once in is closed.
// It exists because watermill-sql's Subscriber.Close can return before it
// closes the channel Subscribe returned (its consume loop marks itself done
// before the channel is closed), while message.Subscriber promises, and
// watermill's universal tests check, that the channel is closed when Close
// returns. The message is handed on as is: its ack and nack still reach
// watermill-sql, which is waiting for them.
func (s *groupSubscriber) forward(ctx context.Context, in <-chan *message.Message, out chan<- *message.Message) {
	defer s.forwarding.Done()
	defer close(out)
	for msg := range in {
		select {
		case out <- msg:
		case <-s.stop:
			// Nobody will read it now; watermill-sql stops waiting for its
			// ack on close or cancel, and the message is delivered again.
		case <-ctx.Done():
		}
	}
}

// SubscribeInitialize creates the topic's tables (message.SubscribeInitializer,
// which watermill's universal tests call before subscribing).
func (s *groupSubscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.ps.InitializeTopic(ctx, topic)
}

func (s *groupSubscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	subs := s.subs
	s.mu.Unlock()

	var errs []error
	for _, sub := range subs {
		if err := sub.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.forwarding.Wait()
	return errors.Join(errs...)
}

// stopQuietBackoff keeps the end of a subscription (the subscriber closed
// or its context canceled, typically while waiting for the group lock) out
// of the error log. It returns a wait rather than zero so that the loop does
// not spin until watermill notices the end, which wakes it at once.
type stopQuietBackoff struct {
	sql.BackoffManager
	wait time.Duration
}

func (b stopQuietBackoff) HandleError(logger watermill.LoggerAdapter, noMsg bool, err error) time.Duration {
	if errors.Is(err, ErrSubscriberStopping) || errors.Is(err, context.Canceled) {
		logger.Debug("Subscription ending", watermill.LogFields{"reason": err.Error()})
		return b.wait
	}
	return b.BackoffManager.HandleError(logger, noMsg, err)
}

// stopQuietLogger keeps the other trace of a subscription's end out of the
// error log. When the subscriber's context is canceled mid-query, pgx closes
// the connection, and watermill-sql logs the failed rollback of that query's
// transaction ("could not rollback tx for querying message: ... conn closed")
// as an error. Nothing is lost: the transaction never committed, and the row
// stays for the next subscriber. Any other error is logged as it came.
type stopQuietLogger struct {
	watermill.LoggerAdapter
}

func (l stopQuietLogger) Error(msg string, err error, fields watermill.LogFields) {
	if cause, ok := fields["query_err"].(error); ok && errors.Is(cause, context.Canceled) {
		l.LoggerAdapter.Debug(msg+" (subscription ending)", fields.Add(watermill.LogFields{"err": fmt.Sprint(err)}))
		return
	}
	l.LoggerAdapter.Error(msg, err, fields)
}

func (l stopQuietLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return stopQuietLogger{l.LoggerAdapter.With(fields)}
}
