package sqlpubsub

import "testing"

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
