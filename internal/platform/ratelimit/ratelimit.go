// Package ratelimit is a per-key token bucket (golang.org/x/time/rate), for
// delivery channels and the API: one Limiter per use, one bucket per key (a doctor,
// an endpoint, a provider account).
//
// Example: at most 10 SMS per doctor per rolling hour:
//
//	smsCap := ratelimit.PerHour(10)
//	if ok, wait := smsCap.Take(doctorID); !ok {
//		// reschedule the delivery after wait
//	}
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrNever is returned by Wait when the limiter can never allow an event
// (burst 0).
var ErrNever = errors.New("ratelimit: limiter never allows an event")

// Limiter holds one token bucket per key, all with the same rate and burst.
// It is safe for concurrent use.
//
// Buckets that are full again are dropped now and then, so memory is
// bounded by the keys active within one refill period. A full bucket is
// indistinguishable from a new one, so dropping it changes no decision.
type Limiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time // the clock; tests replace it

	mu        sync.Mutex // guards buckets, lastSweep, and every token take
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

// New returns a Limiter allowing, per key, `limit` events per second on
// average with bursts of up to `burst`.
func New(limit rate.Limit, burst int) *Limiter {
	return &Limiter{limit: limit, burst: burst, now: time.Now, buckets: map[string]*rate.Limiter{}}
}

// Every returns a Limiter allowing one event per interval per key, with
// bursts of up to burst.
func Every(interval time.Duration, burst int) *Limiter {
	return New(rate.Every(interval), burst)
}

// PerHour returns a Limiter allowing n events per key per rolling hour: a
// bucket of n tokens refilled at n per hour.
func PerHour(n int) *Limiter {
	if n <= 0 {
		return New(0, 0)
	}
	return Every(time.Hour/time.Duration(n), n)
}

// Allow reports whether an event for key may happen now, and if so
// consumes a token.
func (l *Limiter) Allow(key string) bool {
	ok, _ := l.Take(key)
	return ok
}

// Take is Allow that also says, when it refuses, how long until a token
// will be available: the RetryAfter for a rescheduled delivery. A refused
// Take consumes nothing. wait is 0 when ok, rate.InfDuration when the
// limiter can never allow.
func (l *Limiter) Take(key string) (ok bool, wait time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.bucket(key, now).ReserveN(now, 1)
	if !r.OK() {
		return false, rate.InfDuration
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // give the token back: the caller will not wait for it
		return false, d
	}
	return true, 0
}

// Wait blocks until an event for key may happen and consumes its token. It
// fails at once, consuming nothing, if ctx's deadline comes before the
// token would, so a worker with a per-message deadline does not sleep in
// vain. For long caps (per hour) prefer Take and reschedule.
func (l *Limiter) Wait(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := l.now()
	l.mu.Lock()
	r := l.bucket(key, now).ReserveN(now, 1)
	l.mu.Unlock()
	if !r.OK() {
		return ErrNever
	}
	delay := r.DelayFrom(now)
	if delay == 0 {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && deadline.Before(now.Add(delay)) {
		r.CancelAt(now)
		return fmt.Errorf("ratelimit: key would wait %v, past the context deadline: %w", delay, context.DeadlineExceeded)
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}

// Len returns the number of buckets currently held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// bucket returns key's bucket, creating it full. Called with l.mu held.
func (l *Limiter) bucket(key string, now time.Time) *rate.Limiter {
	l.sweep(now)
	b, ok := l.buckets[key]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	return b
}

// sweep drops full buckets, at most once a minute so its cost is amortised
// over many calls. Called with l.mu held; since every take also holds l.mu,
// no one can be using a bucket while it is dropped.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		// A bucket with a pending reservation (Wait) has negative tokens
		// and is kept until it has refilled.
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}
