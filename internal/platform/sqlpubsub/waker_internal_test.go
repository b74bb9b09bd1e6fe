package sqlpubsub

import (
	"context"
	"errors"
	"testing"

	"github.com/uptrace/bun"
)

// A wake between the start of a poll and the wait after it is not lost: the
// wait is on the snapshot taken when the poll began, which that wake closed.
func TestPollWatchKeepsWakeBeforeWait(t *testing.T) {
	watch := &pollWatch{waker: newWaker(), topic: "t"}
	if watch.woken() != nil {
		t.Fatal("woken before any poll began")
	}
	watch.begin()
	select {
	case <-watch.woken():
		t.Fatal("woken without a wake")
	default:
	}
	watch.waker.wake("other") // another topic's commit
	select {
	case <-watch.woken():
		t.Fatal("woken by another topic")
	default:
	}
	watch.waker.wake("t") // a commit while the poll reads
	select {
	case <-watch.woken():
	default:
		t.Fatal("the wake during the poll was lost")
	}
	watch.begin() // the next poll sees that commit; only later ones wake it
	select {
	case <-watch.woken():
		t.Fatal("woken by a wake the poll already saw")
	default:
	}
}

// The commit hook wakes the topics marked before a COMMIT, and only if the
// COMMIT succeeded; other queries neither take nor wake marks.
func TestCommitHookWakesMarkedTopics(t *testing.T) {
	w := newWaker()
	hook := commitHook{waker: w}
	commit := func(err error) {
		event := &bun.QueryEvent{Query: "COMMIT"}
		ctx := hook.BeforeQuery(context.Background(), event)
		event.Err = err
		hook.AfterQuery(ctx, event)
	}
	query := func(q string) {
		event := &bun.QueryEvent{Query: q}
		hook.AfterQuery(hook.BeforeQuery(context.Background(), event), event)
	}
	isWoken := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}

	marked, other := w.snapshot("marked"), w.snapshot("other")
	w.mark("marked")
	query("INSERT INTO x VALUES (1)")
	query("RELEASE SAVEPOINT sp")
	if isWoken(marked) {
		t.Fatal("woken before the COMMIT")
	}
	commit(errors.New("database is locked"))
	if isWoken(marked) {
		t.Fatal("woken by a failed COMMIT")
	}
	w.mark("marked") // the transaction that failed was retried
	commit(nil)
	if !isWoken(marked) {
		t.Fatal("a marked topic was not woken by its COMMIT")
	}
	if isWoken(other) {
		t.Fatal("an unmarked topic was woken")
	}
	again := w.snapshot("marked")
	commit(nil)
	if isWoken(again) {
		t.Fatal("a COMMIT without marks woke the topic")
	}
}
