package api

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/danielgtaylor/huma/v2"

	"github.com/rfd-notify/rfd/internal/core/domain"
)

// StreamGate admits notification streams under two caps, the streams of
// one doctor and the streams of the whole process, and ends every open
// stream when the server shuts down. A stream holds a goroutine, a
// connection and a hub subscription for as long as the client likes, so
// without caps one token could hold them all.
type StreamGate struct {
	perDoctor int // 0: no cap
	max       int // 0: no cap

	mu     sync.Mutex
	open   map[string]int // doctor id -> open streams
	total  int
	done   chan struct{}
	closed bool
}

// NewStreamGate returns a gate admitting at most perDoctor streams of one
// doctor and max in all; zero is no cap.
func NewStreamGate(perDoctor, max int) *StreamGate {
	return &StreamGate{perDoctor: perDoctor, max: max, open: map[string]int{}, done: make(chan struct{})}
}

// Close ends every open stream (each sends a final comment and returns)
// and refuses new ones. http.Server.Shutdown waits for open requests to
// finish and a stream never finishes by itself, so the server calls Close
// when its shutdown starts (RegisterOnShutdown).
func (g *StreamGate) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed = true
		close(g.done)
	}
}

// Open is the number of open streams.
func (g *StreamGate) Open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// closing is closed when the streams must end; nil (never) without a gate.
func (g *StreamGate) closing() <-chan struct{} {
	if g == nil {
		return nil
	}
	return g.done
}

// streamRetryAfter is what a refused stream asks the client to wait, in
// seconds: long enough for a portal tab to close, short enough that a
// doctor does not miss much (the stream replays what was missed anyway).
const streamRetryAfter = "10"

// acquire takes a slot for a stream of doctorID: a release function, or
// the status and detail of the refusal.
func (g *StreamGate) acquire(doctorID string) (func(), int, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed:
		return nil, http.StatusServiceUnavailable, "the server is shutting down; reconnect"
	case g.perDoctor > 0 && g.open[doctorID] >= g.perDoctor:
		return nil, http.StatusTooManyRequests, fmt.Sprintf("this doctor already has %d open notification streams on this server, the most allowed; close one or retry later", g.perDoctor)
	case g.max > 0 && g.total >= g.max:
		return nil, http.StatusTooManyRequests, fmt.Sprintf("this server already serves %d notification streams, the most it allows; retry later", g.max)
	}
	g.open[doctorID]++
	g.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.total--
			g.open[doctorID]--
			if g.open[doctorID] <= 0 {
				delete(g.open, doctorID)
			}
		})
	}, 0, ""
}

// admit is the stream operation's middleware: it runs after the security
// middleware has authenticated the doctor, and holds the doctor's slot
// until the stream ends. A refusal is problem+json with Retry-After.
func (g *StreamGate) admit(api huma.API, doctor func(ctx context.Context) (domain.Doctor, bool)) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		if g == nil {
			next(ctx)
			return
		}
		doc, ok := doctor(ctx.Context())
		if !ok {
			next(ctx)
			return
		}
		release, status, detail := g.acquire(doc.ID)
		if release == nil {
			if status == http.StatusServiceUnavailable {
				ctx.SetHeader("Retry-After", retryAfter)
			} else {
				ctx.SetHeader("Retry-After", streamRetryAfter)
			}
			_ = huma.WriteErr(api, ctx, status, detail)
			return
		}
		defer release()
		next(ctx)
	}
}
