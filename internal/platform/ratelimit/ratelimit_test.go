package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func withClock(l *Limiter) (*Limiter, *fakeClock) {
	c := &fakeClock{t: time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)}
	l.now = c.now
	return l, c
}

func TestPerHourCapPerKey(t *testing.T) {
	l, clock := withClock(PerHour(3))

	for i := range 3 {
		assert.True(t, l.Allow("doctor-1"), "event %d", i)
	}
	assert.False(t, l.Allow("doctor-1"), "4th SMS within the hour")
	assert.True(t, l.Allow("doctor-2"), "buckets are per key")

	clock.advance(19 * time.Minute)
	assert.False(t, l.Allow("doctor-1"))
	clock.advance(time.Minute) // one token refills every 20 minutes
	assert.True(t, l.Allow("doctor-1"))
	assert.False(t, l.Allow("doctor-1"))
}

func TestTakeReportsWaitAndConsumesNothingWhenRefused(t *testing.T) {
	l, clock := withClock(PerHour(2))
	ok, wait := l.Take("k")
	require.True(t, ok)
	assert.Zero(t, wait)
	ok, _ = l.Take("k")
	require.True(t, ok)

	for range 5 { // refusals do not push the next token further away
		ok, wait = l.Take("k")
		assert.False(t, ok)
		assert.Equal(t, 30*time.Minute, wait)
	}
	clock.advance(wait)
	ok, _ = l.Take("k")
	assert.True(t, ok)
	ok, _ = l.Take("k")
	assert.False(t, ok)
}

func TestNeverAllowing(t *testing.T) {
	l := PerHour(0)
	assert.False(t, l.Allow("k"))
	ok, wait := l.Take("k")
	assert.False(t, ok)
	assert.Equal(t, rate.InfDuration, wait)
	assert.ErrorIs(t, l.Wait(context.Background(), "k"), ErrNever)
}

func TestWait(t *testing.T) {
	l := Every(50*time.Millisecond, 1)
	ctx := context.Background()

	start := time.Now()
	require.NoError(t, l.Wait(ctx, "k")) // the burst token
	require.NoError(t, l.Wait(ctx, "k")) // waits for a refill
	assert.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond)

	// A deadline that comes before the token fails at once...
	short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	start = time.Now()
	err := l.Wait(short, "k")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Millisecond)

	// ...and cancelling a wait gives its token back.
	cctx, cancel2 := context.WithCancel(ctx)
	go func() { time.Sleep(10 * time.Millisecond); cancel2() }()
	assert.ErrorIs(t, l.Wait(cctx, "k"), context.Canceled)
	time.Sleep(60 * time.Millisecond)
	assert.True(t, l.Allow("k"), "the cancelled reservation did not keep the token")

	done, cancel3 := context.WithCancel(ctx)
	cancel3()
	assert.True(t, errors.Is(l.Wait(done, "other"), context.Canceled))
}

func TestConcurrentAllowNeverExceedsBurst(t *testing.T) {
	l := Every(time.Hour, 10)
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			if l.Allow("same-doctor") {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(10), allowed.Load())
}

func TestIdleBucketsAreDropped(t *testing.T) {
	l, clock := withClock(PerHour(4))
	for i := range 1000 {
		require.True(t, l.Allow(fmt.Sprintf("doctor-%d", i)))
	}
	require.True(t, l.Allow("busy"))
	require.True(t, l.Allow("busy"))
	assert.Equal(t, 1001, l.Len())

	clock.advance(14 * time.Minute) // not yet refilled (15 min per token)
	l.Allow("busy")
	assert.Equal(t, 1001, l.Len(), "buckets still below burst are kept")

	clock.advance(2 * time.Minute) // the 1000 one-shot buckets are full again
	l.Allow("busy")
	assert.Equal(t, 1, l.Len())
}
