package api_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/health"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// sseLine is one line of a stream and when it arrived.
type sseLine struct {
	text string
	at   time.Time
}

// liveStream is an open stream read line by line.
type liveStream struct {
	lines  chan sseLine
	done   chan struct{}
	endErr error // io.EOF: the server ended the response cleanly
	ended  time.Time
	cancel context.CancelFunc
}

// dialStream opens the stream with token. It returns the response when the
// server refused it (the body read), or the open stream.
func dialStream(t *testing.T, base, token string) (*liveStream, response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/notifications/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return nil, response{status: resp.StatusCode, header: resp.Header, body: b}
	}
	s := &liveStream{lines: make(chan sseLine, 1000), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				s.endErr, s.ended = err, time.Now()
				return
			}
			select {
			case s.lines <- sseLine{text: strings.TrimRight(line, "\n"), at: time.Now()}:
			default:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-s.done })
	return s, response{status: resp.StatusCode, header: resp.Header}
}

// closeStream disconnects the client and waits for its reader.
func (s *liveStream) closeStream() { s.cancel(); <-s.done }

func (s *liveStream) isOpen() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// TestStreamEndsWhenTokenExpires: a stream opened with a token that expires
// in a moment ends by itself at the expiry, with a final comment, while a
// stream of a longer-lived token stays open; the expired token cannot
// reopen it (the portal needs a fresh token).
func TestStreamEndsWhenTokenExpires(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-exp")
		exp := time.Now().Add(2 * time.Second).Truncate(time.Second)
		short := f.token("doc-exp", func(c jwt.MapClaims) { c["exp"] = exp.Unix() })
		s, r := dialStream(t, f.url, short)
		if s == nil {
			t.Fatalf("stream with a live token: %d %s", r.status, r.body)
		}
		long, r := dialStream(t, f.url, f.token("doc-exp"))
		if long == nil {
			t.Fatalf("stream with an hour's token: %d %s", r.status, r.body)
		}

		select {
		case <-s.done:
		case <-time.After(time.Until(exp) + 3*time.Second):
			t.Fatalf("the stream is still open %s after its token expired", time.Since(exp).Round(time.Millisecond))
		}
		if !errors.Is(s.endErr, io.EOF) {
			t.Fatalf("the stream ended with %v, want a clean end of the response", s.endErr)
		}
		if s.ended.Before(exp) || s.ended.After(exp.Add(1500*time.Millisecond)) {
			t.Fatalf("the stream ended at %s, want at the token's exp %s (leeway 0)", s.ended.Format(time.StampMilli), exp.Format(time.StampMilli))
		}
		var last string
		for len(s.lines) > 0 {
			l := <-s.lines
			if l.text != "" {
				last = l.text
			}
			if l.at.After(exp) && !strings.HasPrefix(l.text, ":") && l.text != "" {
				t.Errorf("data sent after the token expired: %q", l.text)
			}
		}
		if !strings.Contains(last, "token expired") {
			t.Errorf("last line %q, want the final comment saying the token expired", last)
		}
		if !long.isOpen() {
			t.Fatalf("the stream of the hour's token ended too (%v)", long.endErr)
		}
		if _, r := dialStream(t, f.url, short); r.status != http.StatusUnauthorized {
			t.Fatalf("reopening with the expired token: %d, want 401", r.status)
		}
	})
}

// TestStreamCaps: one doctor may hold RFD_STREAMS_PER_DOCTOR streams, the
// process RFD_STREAMS_MAX in all; one more is 429 problem+json with
// Retry-After, another doctor is not affected by the first one's cap, and
// a closed stream frees its slot.
func TestStreamCaps(t *testing.T) {
	for _, name := range combinations {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, name, func(c *config.Config) { c.StreamsPerDoctor, c.StreamsMax = 5, 8 })
			f.registerDoctor("doc-cap-a")
			f.registerDoctor("doc-cap-b")
			tokA, tokB := f.token("doc-cap-a"), f.token("doc-cap-b")

			var a []*liveStream
			for i := range 5 {
				s, r := dialStream(t, f.url, tokA)
				if s == nil {
					t.Fatalf("doctor A's stream %d: %d %s", i+1, r.status, r.body)
				}
				a = append(a, s)
			}
			_, r := dialStream(t, f.url, tokA)
			p := r.problem(t, http.StatusTooManyRequests)
			if r.header.Get("Retry-After") == "" || !strings.Contains(p.Detail, "5 open notification streams") {
				t.Fatalf("6th stream of one doctor: Retry-After %q, detail %q", r.header.Get("Retry-After"), p.Detail)
			}

			for i := range 3 {
				if s, r := dialStream(t, f.url, tokB); s == nil {
					t.Fatalf("doctor B's stream %d beside A's five: %d %s", i+1, r.status, r.body)
				}
			}
			if got := f.server.Streams().Open(); got != 8 {
				t.Fatalf("open streams = %d, want 8", got)
			}
			_, r = dialStream(t, f.url, tokB)
			p = r.problem(t, http.StatusTooManyRequests)
			if r.header.Get("Retry-After") == "" || !strings.Contains(p.Detail, "8 notification streams") {
				t.Fatalf("9th stream of the process: Retry-After %q, detail %q", r.header.Get("Retry-After"), p.Detail)
			}

			// A closed stream frees its slot, as soon as the server sees
			// the client gone.
			a[0].closeStream()
			deadline := time.Now().Add(10 * time.Second)
			for {
				s, r := dialStream(t, f.url, tokA)
				if s != nil {
					break
				}
				if r.status != http.StatusTooManyRequests || time.Now().After(deadline) {
					t.Fatalf("after closing one of A's streams: %d %s", r.status, r.body)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestStreamEndsOnShutdown: EndStreams (the server's RegisterOnShutdown
// hook) ends open streams at once with a final comment, so that
// http.Server.Shutdown does not wait for them.
func TestStreamEndsOnShutdown(t *testing.T) {
	f := newFixture(t, testenv.SQLiteSQL)
	f.registerDoctor("doc-shut")
	ts := httptest.NewUnstartedServer(f.server.Handler())
	ts.Config.RegisterOnShutdown(f.server.EndStreams)
	ts.Start()
	defer ts.Close()
	s, r := dialStream(t, ts.URL, f.token("doc-shut"))
	if s == nil {
		t.Fatalf("stream: %d %s", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with an open stream: %v after %s", err, time.Since(start))
	}
	<-s.done
	if !errors.Is(s.endErr, io.EOF) {
		t.Fatalf("the stream ended with %v, want a clean end", s.endErr)
	}
	var last string
	for len(s.lines) > 0 {
		if l := <-s.lines; l.text != "" {
			last = l.text
		}
	}
	if !strings.Contains(last, "shutting down") {
		t.Fatalf("last line %q, want the final comment saying the server shuts down", last)
	}
}

// TestMetricsLabelsBounded: requests with made-up methods and made-up
// paths, sent by anyone, add no label values to the response-time
// histogram: methods outside the API's set are "other", unrouted paths are
// "unmatched".
func TestMetricsLabelsBounded(t *testing.T) {
	env := testenv.New(t, testenv.SQLiteSQL, generousRateLimits)
	reg := prometheus.NewRegistry()
	srv, err := api.NewServer(withServices(t, api.Deps{Config: env.Config, DB: env.DB, Logger: env.Logger, Metrics: reg}), &health.Checks{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	series := func() (int, []string) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n, methods := 0, []string{}
		for _, mf := range mfs {
			if mf.GetName() != "rfd_http_request_duration_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				n++
				for _, l := range m.GetLabel() {
					if l.GetName() == "method" && !slices.Contains(methods, l.GetValue()) {
						methods = append(methods, l.GetValue())
					}
				}
			}
		}
		return n, methods
	}
	send := func(method, path string) {
		req, _ := http.NewRequest(method, ts.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// One of each kind first, so that "before" holds every label value
	// the flood may use.
	send("MADEUP", "/v1/notifications")
	send("MADEUP", "/nowhere")
	send(http.MethodGet, "/nowhere")
	send(http.MethodGet, "/healthz")
	before, _ := series()
	for i := range 200 {
		send(fmt.Sprintf("X-M%d", i), "/v1/notifications")
		send(fmt.Sprintf("P%d", i), fmt.Sprintf("/nowhere/%d", i))
		send(http.MethodGet, fmt.Sprintf("/made/up/%d", i))
	}
	after, methods := series()
	if after != before {
		t.Errorf("series grew from %d to %d with made-up methods and paths", before, after)
	}
	for _, m := range methods {
		if !slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, m) {
			t.Errorf("method label %q", m)
		}
	}
	// Without a gatherer (the api role), the public port has no /metrics.
	pub, err := api.NewServer(withServices(t, api.Deps{Config: env.Config, DB: env.DB, Logger: env.Logger}), &health.Checks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	pub.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("/metrics without a gatherer = %d, want 404", rec.Code)
	}
}
