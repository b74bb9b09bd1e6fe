// Package groupcommit runs the work of concurrent callers together: the
// items that callers hand in while a batch is running wait, and the next
// batch takes them all at once. A consumer reading a Kafka topic handles
// one message per partition at a time; with a group, the messages in hand
// across partitions share one transaction, and the costs paid per
// transaction (round trips, statements, the commit) are paid per batch.
//
// There is no background goroutine to start or stop: the first caller to
// find no batch running runs one, and hands the next batch to a caller
// still waiting in it before it returns.
package groupcommit

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Exec runs a batch of items, all or nothing: an error fails the whole
// batch, which is then retried one item at a time so that each item gets
// its own outcome.
type Exec[T any] func(ctx context.Context, items []T) error

// Group batches items for exec.
type Group[T any] struct {
	exec       Exec[T]
	maxBatch   int
	maxRunning int

	mu      sync.Mutex
	pending []*call[T]
	running int
}

type call[T any] struct {
	ctx   context.Context
	item  T
	err   error
	panic any // what exec panicked with, raised again in the caller
	done  chan struct{}
	lead  chan []*call[T] // the batch this caller is to run
}

// New returns a group running up to maxRunning batches of up to maxBatch
// items at a time. maxBatch 1 runs every item on its own.
func New[T any](exec Exec[T], maxBatch, maxRunning int) *Group[T] {
	return &Group[T]{exec: exec, maxBatch: max(maxBatch, 1), maxRunning: max(maxRunning, 1)}
}

// Do runs item in the next batch and returns its outcome. The batch runs
// until the earliest deadline among its items' contexts; their cancellation
// does not stop it, so a caller that gave up may still see its item
// committed (the inbox makes the redelivery a no-op).
func (g *Group[T]) Do(ctx context.Context, item T) error {
	c := &call[T]{ctx: ctx, item: item, done: make(chan struct{}), lead: make(chan []*call[T], 1)}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	var batch []*call[T]
	if g.running < g.maxRunning {
		g.running++
		batch = g.take()
	}
	g.mu.Unlock()
	if batch != nil {
		g.run(batch)
	}
	for {
		select {
		case <-c.done:
			if c.panic != nil {
				panic(c.panic)
			}
			return c.err
		case b := <-c.lead:
			g.run(b)
		}
	}
}

// take removes the next batch from pending; g.mu is held.
func (g *Group[T]) take() []*call[T] {
	n := min(len(g.pending), g.maxBatch)
	batch := make([]*call[T], n)
	copy(batch, g.pending)
	g.pending = append(g.pending[:0], g.pending[n:]...)
	return batch
}

// run runs batch, then hands the next one to a caller waiting in it, or
// gives up its running slot.
func (g *Group[T]) run(batch []*call[T]) {
	g.execute(batch)
	g.mu.Lock()
	if len(g.pending) == 0 {
		g.running--
		g.mu.Unlock()
		return
	}
	next := g.take()
	g.mu.Unlock()
	next[0].lead <- next
}

func (g *Group[T]) execute(batch []*call[T]) {
	items := make([]T, len(batch))
	for i, c := range batch {
		items[i] = c.item
	}
	p, err := g.safeExec(batch, items)
	if (err != nil || p != nil) && len(batch) > 1 {
		// Each on its own: one bad item must not fail the others.
		for i, c := range batch {
			c.panic, c.err = g.safeExec(batch[i:i+1], items[i:i+1])
			close(c.done)
		}
		return
	}
	for _, c := range batch {
		c.err, c.panic = err, p
		close(c.done)
	}
}

// safeExec runs exec on items with the context of batch. A panic is
// recovered, to be raised again in its item's own caller (where the
// router's recoverer deals with it): the callers waiting on the batch
// must all be answered.
func (g *Group[T]) safeExec(batch []*call[T], items []T) (panicked any, err error) {
	ctx, cancel := batchContext(batch)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			panicked, err = r, fmt.Errorf("groupcommit: panic: %v", r)
		}
	}()
	return nil, g.exec(ctx, items)
}

// batchContext carries the first item's values (logger, trace) and the
// earliest of the items' deadlines, without their cancellation.
func batchContext[T any](batch []*call[T]) (context.Context, context.CancelFunc) {
	var deadline time.Time
	for _, c := range batch {
		if d, ok := c.ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
			deadline = d
		}
	}
	ctx := context.WithoutCancel(batch[0].ctx)
	if deadline.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, deadline)
}
