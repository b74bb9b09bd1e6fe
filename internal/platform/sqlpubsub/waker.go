package sqlpubsub

import (
	"context"
	stdsql "database/sql"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"
)

// Why subscribers on SQLite are woken in-process
//
// A watermill-sql subscriber that finds its topic empty sleeps for the poll
// interval before it looks again, so on `rfd serve` every hop of a message
// (the API's event, the consumer's notification, ...) waited for the next
// poll: half an interval on average, a whole one at worst. The SQLite mode is
// single-process by design, so whoever commits a message is almost always in
// this process: after the commit it wakes the waiting subscribers of the
// message's topic, which poll at once.
//
// Who wakes:
//   - a Publish of Publisher(), which writes in autocommit through
//     database/sql, wakes its topic once it returns;
//   - a Publish of a TxPublisher marks its topic, and the next successful
//     COMMIT of a bun transaction on the database (commitHook, a bun query
//     hook) wakes the marked topics: the outbox publishes through
//     TxPublisher inside the caller's bun transaction.
//
// The hook takes the marks just before the COMMIT, while the transaction
// still holds SQLite's write lock, and wakes after it. The service's DSN
// begins every transaction IMMEDIATE (store.SQLiteDSN), so no other
// transaction can write, mark or commit between a Publish and its
// transaction's COMMIT: the marks taken are that transaction's own. Were
// transactions deferred, another one could commit in between and take the
// marks too early; the messages would then wait for the poll. A rolled-back
// transaction's marks wake their topics at the next commit, for nothing.
//
// Only marked topics are woken, not every subscriber at each commit: about
// seven commits carry one event through `rfd serve`, and waking all dozen
// subscribers at each made some thirty empty polls per event.
//
// Subscribers' own statements (their reads and acks) go through
// database/sql, not bun, so they never wake anyone.
//
// No wake is lost: a subscriber takes a snapshot of its topic's broadcast
// when it begins a poll, before it reads, and after a poll that found
// nothing it waits on that snapshot. A wake after a commit its read may have
// missed closes the snapshot's channel, so the wait ends at once, even when
// the wake came before the wait began.
//
// The poll stays, as the fallback for the writers the wake cannot see:
// another process (`rfd publish`), or a caller committing a TxPublisher's
// *sql.Tx directly rather than through bun (its topic is then woken by the
// next bun commit, or polled).
//
// PostgreSQL has none of this: there the roles run as separate processes,
// where an in-process wake reaches nobody, and the production path keeps its
// bun queries free of hooks.

// waker holds the wakes of one database: per topic, a broadcast, and the
// topics marked by tx publishers since the last commit.
type waker struct {
	mu     sync.Mutex
	topics map[string]*broadcast
	marked map[string]bool
}

// broadcast: wake ends every wait on a snapshot taken before it.
type broadcast struct {
	ch chan struct{}
	// taken says whether ch was handed out by snapshot; if not, nobody can
	// be waiting on it and wake need not replace it (under load, most
	// commits find the topic's subscribers busy).
	taken bool
}

func newWaker() *waker {
	return &waker{topics: map[string]*broadcast{}, marked: map[string]bool{}}
}

func (w *waker) broadcastOf(topic string) *broadcast {
	b := w.topics[topic]
	if b == nil {
		b = &broadcast{ch: make(chan struct{})}
		w.topics[topic] = b
	}
	return b
}

// snapshot returns the channel the next wake of topic closes.
func (w *waker) snapshot(topic string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.broadcastOf(topic)
	b.taken = true
	return b.ch
}

// wake ends the waits of topic's subscribers.
func (w *waker) wake(topics ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, topic := range topics {
		b := w.topics[topic]
		if b == nil || !b.taken {
			continue
		}
		close(b.ch)
		b.ch = make(chan struct{})
		b.taken = false
	}
}

// mark notes that topic has a message in a transaction not yet committed.
func (w *waker) mark(topic string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.marked[topic] = true
}

// takeMarked returns the marked topics and clears the marks.
func (w *waker) takeMarked() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.marked) == 0 {
		return nil
	}
	topics := make([]string, 0, len(w.marked))
	for topic := range w.marked {
		topics = append(topics, topic)
	}
	clear(w.marked)
	return topics
}

// wakers holds one waker per *sql.DB, so that publishers and subscribers of
// one database meet however many PubSub values were built on it, and
// remembers which *bun.DB values carry the commit hook. Like groupLocks,
// entries live as long as the process, which opens one database.
var wakers = struct {
	mu     sync.Mutex
	byDB   map[*stdsql.DB]*waker
	hooked map[*bun.DB]bool
}{byDB: map[*stdsql.DB]*waker{}, hooked: map[*bun.DB]bool{}}

// wakerOf returns the waker of db's database and, the first time it is
// asked for db, adds the hook that wakes the marked topics after each bun
// COMMIT.
//
// The hook is added to db itself, which is not safe while other goroutines
// run queries on it; New, which calls this, runs while the process is being
// wired, before any. Transactions begun on a copy of db made before (bun's
// With... methods copy the hooks) wake nobody; their messages wait for the
// poll.
func wakerOf(db *bun.DB) *waker {
	wakers.mu.Lock()
	defer wakers.mu.Unlock()
	w := wakers.byDB[db.DB]
	if w == nil {
		w = newWaker()
		wakers.byDB[db.DB] = w
	}
	if !wakers.hooked[db] {
		//lint:ignore SA1019 WithQueryHook returns a copy; the hook must be on the *bun.DB every part of the process was given.
		db.AddQueryHook(commitHook{waker: w})
		wakers.hooked[db] = true
	}
	return w
}

// commitHook wakes, after a bun transaction commits, the topics tx
// publishers marked in it.
type commitHook struct{ waker *waker }

var _ bun.QueryHook = commitHook{}

// markedTopicsKey carries the topics taken before a COMMIT to the hook's
// AfterQuery (bun passes it the context BeforeQuery returned).
type markedTopicsKey struct{}

// BeforeQuery takes the marks before a COMMIT, while the transaction still
// holds the write lock. bun reports a transaction's commit with the query
// "COMMIT" (Tx.Commit; a nested transaction's RELEASE SAVEPOINT commits
// nothing yet).
func (h commitHook) BeforeQuery(ctx context.Context, event *bun.QueryEvent) context.Context {
	if event.Query != "COMMIT" {
		return ctx
	}
	if topics := h.waker.takeMarked(); len(topics) > 0 {
		return context.WithValue(ctx, markedTopicsKey{}, topics)
	}
	return ctx
}

// AfterQuery wakes the taken topics if the COMMIT succeeded; if it failed,
// their messages were not committed.
func (h commitHook) AfterQuery(ctx context.Context, event *bun.QueryEvent) {
	if event.Query != "COMMIT" || event.Err != nil {
		return
	}
	if topics, ok := ctx.Value(markedTopicsKey{}).([]string); ok {
		h.waker.wake(topics...)
	}
}

// wakingPublisher is Publisher()'s publisher on SQLite: each Publish is its
// own committed transaction, so it wakes the topic once it returns.
type wakingPublisher struct {
	message.Publisher
	waker *waker
}

func (p wakingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	p.waker.wake(topic)
	return nil
}

// markingPublisher is TxPublisher's publisher on SQLite: it marks the topic,
// for the transaction's COMMIT to wake.
type markingPublisher struct {
	message.Publisher
	waker *waker
}

func (p markingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	p.waker.mark(topic)
	return nil
}

// pollWatch carries one subscription's snapshot of its topic's broadcast
// from the start of a poll (the beginner's BeginTx) to the wait after it
// (the backoff's HandleError).
type pollWatch struct {
	waker *waker
	topic string

	mu   sync.Mutex
	snap <-chan struct{}
}

// begin takes the snapshot; call it before the poll reads.
func (p *pollWatch) begin() {
	snap := p.waker.snapshot(p.topic)
	p.mu.Lock()
	p.snap = snap
	p.mu.Unlock()
}

// woken returns a channel closed once the topic was woken since the last
// begin (nil, which never fires, if there was none).
func (p *pollWatch) woken() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snap
}

// wakingBackoff is the SQLite subscription's backoff: after a poll that
// found nothing, it waits in HandleError until its topic is woken, the
// poll interval passes, or the subscription ends, and then has watermill-sql
// poll at once. Errors are handled as stopQuietBackoff does.
type wakingBackoff struct {
	stopQuietBackoff
	watch *pollWatch
	poll  time.Duration
	// stop is the subscriber's stop channel and done its Subscribe
	// context's: watermill-sql's Close waits for the loop that is waiting
	// here, so the wait must end on either.
	stop <-chan struct{}
	done <-chan struct{}
}

func (b wakingBackoff) HandleError(logger watermill.LoggerAdapter, noMsg bool, err error) time.Duration {
	if err != nil || !noMsg {
		return b.stopQuietBackoff.HandleError(logger, noMsg, err)
	}
	timer := time.NewTimer(b.poll)
	defer timer.Stop()
	select {
	case <-b.watch.woken():
	case <-timer.C:
	case <-b.stop:
	case <-b.done:
	}
	return 0
}
