package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/health"
)

func rateLimits(perKey, perDoctor float64) func(*config.Config) {
	return func(c *config.Config) {
		c.APIRatePerKey = perKey
		c.APIRatePerDoctor = perDoctor
	}
}

// untilLimited calls do up to 20 times and returns the first refusal,
// checking that the first burst calls were allowed. With a rate of r per
// second and a burst of r, a refusal comes long before 20 calls unless
// each call takes longer than 1/r s.
func untilLimited(t *testing.T, burst int, do func() response) response {
	t.Helper()
	for i := range 20 {
		r := do()
		if r.status == http.StatusOK {
			continue
		}
		if i < burst {
			t.Fatalf("call %d refused within the burst of %d: %d %s", i+1, burst, r.status, r.body)
		}
		return r
	}
	t.Fatal("20 calls and no 429")
	return response{}
}

// tooMany checks r is a 429 problem with a whole-second Retry-After of at
// least 1.
func tooMany(t *testing.T, r response) problem {
	t.Helper()
	p := r.problem(t, http.StatusTooManyRequests)
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Fatalf("Retry-After %q, want whole seconds >= 1", r.header.Get("Retry-After"))
	}
	if p.Detail == "" {
		t.Errorf("429 without detail: %s", r.body)
	}
	return p
}

// TestRateLimitPerDoctor: a doctor over their rate gets 429 with
// Retry-After on every doctor operation; another doctor is unaffected.
func TestRateLimitPerDoctor(t *testing.T) {
	for _, name := range combinations {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, name, rateLimits(1e6, 2))
			f.registerDoctor("doc-busy")
			f.registerDoctor("doc-calm")
			busy, calm := f.token("doc-busy"), f.token("doc-calm")

			p := tooMany(t, untilLimited(t, 2, func() response { return f.do(http.MethodGet, "/v1/me", busy, nil) }))
			if !strings.Contains(p.Detail, "doctor") {
				t.Errorf("detail %q does not name the per-doctor limit", p.Detail)
			}
			// The limit is the doctor's, not the operation's.
			tooMany(t, f.do(http.MethodGet, "/v1/notifications", busy, nil))
			// Another doctor has their own bucket.
			f.do(http.MethodGet, "/v1/me", calm, nil).ok(t, http.StatusOK, nil)
			f.do(http.MethodGet, "/v1/notifications", calm, nil).ok(t, http.StatusOK, nil)
			// A refused token (401) is answered before the limit: it is
			// nobody's request.
			f.do(http.MethodGet, "/v1/me", "not-a-token", nil).problem(t, http.StatusUnauthorized)
		})
	}
}

// TestRateLimitPerAPIKey: an API key over its rate gets 429 with
// Retry-After; another key is unaffected.
func TestRateLimitPerAPIKey(t *testing.T) {
	for _, name := range combinations {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, name, rateLimits(3, 1e6))
			f.registerDoctor("doc-k")
			hot := f.apiKey("hot", auth.ScopeDoctorsRead)
			cold := f.apiKey("cold", auth.ScopeDoctorsRead)

			p := tooMany(t, untilLimited(t, 3, func() response {
				return f.do(http.MethodGet, "/v1/doctors/doc-k", "", nil, "X-API-Key", hot)
			}))
			if !strings.Contains(p.Detail, "API key") {
				t.Errorf("detail %q does not name the per-key limit", p.Detail)
			}
			f.do(http.MethodGet, "/v1/doctors/doc-k", "", nil, "X-API-Key", cold).ok(t, http.StatusOK, nil)
			// The doctor the keys look up has a bucket of their own.
			f.do(http.MethodGet, "/v1/me", f.token("doc-k"), nil).ok(t, http.StatusOK, nil)
		})
	}
}

// TestRateLimitDocumented: every authenticated operation documents its 429
// with Retry-After and a problem body.
func TestRateLimitDocumented(t *testing.T) {
	spec := api.New(&health.Checks{}, prometheus.NewRegistry()).OpenAPI()
	n := 0
	for path, item := range spec.Paths {
		for method, op := range map[string]*huma.Operation{"GET": item.Get, "POST": item.Post, "PUT": item.Put, "PATCH": item.Patch, "DELETE": item.Delete} {
			if op == nil || len(op.Security) == 0 {
				continue
			}
			n++
			r := op.Responses["429"]
			if r == nil {
				t.Errorf("%s %s: no 429", method, path)
				continue
			}
			if r.Headers["Retry-After"] == nil {
				t.Errorf("%s %s: 429 without Retry-After", method, path)
			}
			if r.Content["application/problem+json"] == nil {
				t.Errorf("%s %s: 429 without a problem body", method, path)
			}
		}
	}
	if n == 0 {
		t.Fatal("no authenticated operations")
	}
}
