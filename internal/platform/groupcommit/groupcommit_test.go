package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/platform/groupcommit"
)

// recorder is an Exec that records its batches and can hold the first one
// until the test lets it go.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	hold    chan struct{} // the first batch waits for it to close
	held    atomic.Bool
	running atomic.Int32
	most    atomic.Int32
	fail    func(items []int) error
}

func (r *recorder) exec(_ context.Context, items []int) error {
	n := r.running.Add(1)
	defer r.running.Add(-1)
	for {
		m := r.most.Load()
		if n <= m || r.most.CompareAndSwap(m, n) {
			break
		}
	}
	if r.hold != nil && r.held.CompareAndSwap(false, true) {
		<-r.hold
	}
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(items))
	r.mu.Unlock()
	if r.fail != nil {
		return r.fail(items)
	}
	return nil
}

// doAll runs Do for items 0..n-1 from n goroutines, the first one alone
// until it is in exec, and returns each item's error.
func doAll(t *testing.T, g *groupcommit.Group[int], r *recorder, n int) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); errs[0] = g.Do(context.Background(), 0) }()
	waitFor(t, func() bool { return r.held.Load() })
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = g.Do(context.Background(), i) }()
	}
	time.Sleep(50 * time.Millisecond) // let them queue behind the held batch
	close(r.hold)
	wg.Wait()
	return errs
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCallersQueuedBehindABatchShareTheNext(t *testing.T) {
	r := &recorder{hold: make(chan struct{})}
	g := groupcommit.New(r.exec, 32, 1)
	errs := doAll(t, g, r, 10)
	for i, err := range errs {
		if err != nil {
			t.Errorf("item %d: %v", i, err)
		}
	}
	if len(r.batches) != 2 {
		t.Fatalf("batches = %v, want the held one and one of the 9 queued behind it", r.batches)
	}
	if !slices.Equal(r.batches[0], []int{0}) {
		t.Errorf("first batch = %v, want [0]", r.batches[0])
	}
	got := slices.Sorted(slices.Values(r.batches[1]))
	if !slices.Equal(got, []int{1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("second batch = %v, want items 1..9", r.batches[1])
	}
}

func TestBatchesAreCappedAtMaxBatch(t *testing.T) {
	r := &recorder{hold: make(chan struct{})}
	g := groupcommit.New(r.exec, 4, 1)
	doAll(t, g, r, 13)
	var sizes []int
	total := 0
	for _, b := range r.batches {
		sizes = append(sizes, len(b))
		total += len(b)
	}
	if total != 13 || slices.Max(sizes) > 4 {
		t.Fatalf("batch sizes %v: want 13 items in batches of at most 4", sizes)
	}
	if len(sizes) != 4 { // [0], then 12 queued: 4+4+4
		t.Errorf("batch sizes %v, want [1 4 4 4]", sizes)
	}
}

func TestAFailedBatchIsRetriedItemByItem(t *testing.T) {
	bad := errors.New("item 3 is bad")
	r := &recorder{hold: make(chan struct{}), fail: func(items []int) error {
		if slices.Contains(items, 3) {
			return bad
		}
		return nil
	}}
	g := groupcommit.New(r.exec, 32, 1)
	errs := doAll(t, g, r, 6)
	for i, err := range errs {
		if want := i == 3; (err != nil) != want || (want && !errors.Is(err, bad)) {
			t.Errorf("item %d: err = %v", i, err)
		}
	}
	// [0], then [1..5] failing, then each of 1..5 alone.
	if len(r.batches) != 7 {
		t.Errorf("batches = %v, want 7", r.batches)
	}
}

func TestAPanicIsRaisedInItsOwnCallerOnly(t *testing.T) {
	r := &recorder{hold: make(chan struct{}), fail: func(items []int) error {
		if slices.Contains(items, 2) {
			panic("item 2 panics")
		}
		return nil
	}}
	g := groupcommit.New(r.exec, 32, 1)
	errs := make([]error, 5)
	var wg sync.WaitGroup
	do := func(i int) {
		defer wg.Done()
		defer func() {
			if p := recover(); p != nil {
				errs[i] = fmt.Errorf("panic: %v", p)
			}
		}()
		errs[i] = g.Do(context.Background(), i)
	}
	wg.Add(1)
	go do(0)
	waitFor(t, func() bool { return r.held.Load() })
	for i := 1; i < 5; i++ {
		wg.Add(1)
		go do(i)
	}
	time.Sleep(50 * time.Millisecond)
	close(r.hold)
	wg.Wait()
	for i, err := range errs {
		if (i == 2) != (err != nil) {
			t.Errorf("item %d: err = %v", i, err)
		}
	}
	if errs[2] == nil || errs[2].Error() != "panic: item 2 panics" {
		t.Errorf("item 2: %v, want its panic raised in its caller", errs[2])
	}
}

func TestAtMostMaxRunningBatchesRunAtOnce(t *testing.T) {
	r := &recorder{}
	slow := func(ctx context.Context, items []int) error {
		time.Sleep(2 * time.Millisecond)
		return r.exec(ctx, items)
	}
	g := groupcommit.New(slow, 3, 2)
	var wg sync.WaitGroup
	var done atomic.Int32
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.Do(context.Background(), i); err == nil {
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if done.Load() != 200 {
		t.Fatalf("%d of 200 done", done.Load())
	}
	if m := r.most.Load(); m > 2 {
		t.Errorf("%d batches ran at once, want at most 2", m)
	}
	seen := map[int]bool{}
	for _, b := range r.batches {
		if len(b) > 3 {
			t.Errorf("batch of %d, want at most 3", len(b))
		}
		for _, it := range b {
			if seen[it] {
				t.Errorf("item %d ran twice", it)
			}
			seen[it] = true
		}
	}
	if len(seen) != 200 {
		t.Errorf("%d distinct items ran, want 200", len(seen))
	}
}

func TestTheBatchContextHasTheEarliestDeadlineAndNoCancellation(t *testing.T) {
	type seen struct {
		deadline time.Time
		err      error
	}
	got := make(chan seen, 1)
	hold := make(chan struct{})
	var first atomic.Bool
	exec := func(ctx context.Context, items []int) error {
		if first.CompareAndSwap(false, true) {
			<-hold
			return nil
		}
		d, _ := ctx.Deadline()
		got <- seen{d, ctx.Err()}
		return nil
	}
	g := groupcommit.New(exec, 32, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = g.Do(context.Background(), 0) }()
	waitFor(t, first.Load)
	soon := time.Now().Add(time.Hour)
	later := soon.Add(time.Hour)
	var cancels []context.CancelFunc
	for i, d := range []time.Time{later, soon} {
		ctx, cancel := context.WithDeadline(context.Background(), d)
		cancels = append(cancels, cancel)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = g.Do(ctx, i+1)
		}()
	}
	time.Sleep(50 * time.Millisecond) // both queued behind the held batch
	for _, cancel := range cancels {
		cancel() // the callers give up before their batch runs
	}
	close(hold)
	s := <-got
	wg.Wait()
	if !s.deadline.Equal(soon) {
		t.Errorf("batch deadline %v, want the earliest, %v", s.deadline, soon)
	}
	if s.err != nil {
		t.Errorf("batch context: %v after the callers' contexts were cancelled, want none", s.err)
	}
}
