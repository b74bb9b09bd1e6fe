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
// this process: after the commit it wakes the database's waiting subscribers,
// which poll at once.
//
// Who wakes:
//   - a successful COMMIT of a bun transaction on the database (commitHook, a
//     bun query hook): the outbox publishes through TxPublisher inside the
//     caller's bun transaction;
//   - a successful Publish of Publisher(), which writes in autocommit
//     through database/sql, where bun sees nothing.
//
// Subscribers' own statements (their reads and acks) go through
// database/sql, not bun, so they never wake anyone. A commit does not say
// which tables it wrote, so every commit wakes every waiting subscriber of
// the database; for an idle one that is one indexed SELECT.
//
// No wake is lost: a subscriber takes a snapshot of the waker when it begins
// a poll, before it reads, and after a poll that found nothing it waits on
// that snapshot. A commit that its read may have missed closes the
// snapshot's channel, so the wait ends at once, even when the commit came
// before the wait began.
//
// The poll stays, as the fallback for the writers the wake cannot see:
// another process (`rfd publish`), or a caller committing a TxPublisher's
// *sql.Tx directly rather than through bun.
//
// PostgreSQL has none of this: there the roles run as separate processes,
// where an in-process wake reaches nobody, and the production path keeps its
// bun queries free of hooks.

// waker is a broadcast: wake ends every wait on a snapshot taken before it.
type waker struct {
	mu sync.Mutex
	ch chan struct{}
	// taken says whether ch was handed out by snapshot; if not, nobody can
	// be waiting on it and wake need not replace it (most commits, under
	// load, find every subscriber busy).
	taken bool
}

func newWaker() *waker { return &waker{ch: make(chan struct{})} }

// snapshot returns the channel the next wake closes.
func (w *waker) snapshot() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.taken = true
	return w.ch
}

func (w *waker) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.taken {
		return
	}
	close(w.ch)
	w.ch = make(chan struct{})
	w.taken = false
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
// asked for db, adds the hook that wakes it after each bun COMMIT.
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

// commitHook wakes the subscribers after a bun transaction commits: it may
// have published messages.
type commitHook struct{ waker *waker }

var _ bun.QueryHook = commitHook{}

func (commitHook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

// AfterQuery wakes on a successful COMMIT. bun reports a transaction's
// commit with the query "COMMIT" (Tx.Commit; a nested transaction's
// RELEASE SAVEPOINT commits nothing yet).
func (h commitHook) AfterQuery(_ context.Context, event *bun.QueryEvent) {
	if event.Err == nil && event.Query == "COMMIT" {
		h.waker.wake()
	}
}

// wakingPublisher is Publisher()'s publisher on SQLite: each Publish is its
// own committed transaction, so it wakes the subscribers once it returns.
type wakingPublisher struct {
	message.Publisher
	waker *waker
}

func (p wakingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	p.waker.wake()
	return nil
}

// pollWatch carries one subscription's snapshot of the waker from the start
// of a poll (the beginner's BeginTx) to the wait after it (the backoff's
// HandleError).
type pollWatch struct {
	waker *waker

	mu   sync.Mutex
	snap <-chan struct{}
}

// begin takes the snapshot; call it before the poll reads.
func (p *pollWatch) begin() {
	snap := p.waker.snapshot()
	p.mu.Lock()
	p.snap = snap
	p.mu.Unlock()
}

// woken returns a channel closed once the database was woken since the last
// begin (nil, which never fires, if there was none).
func (p *pollWatch) woken() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snap
}

// wakingBackoff is the SQLite subscription's backoff: after a poll that
// found nothing, it waits in HandleError until the database is woken, the
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
