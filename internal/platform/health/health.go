// Package health serves /healthz, /readyz and /metrics. Liveness says only
// that the process answers; readiness runs every check (database, transport,
// router) and answers 503 with the failing checks' reasons.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// CheckTimeout bounds each readiness check.
const CheckTimeout = 2 * time.Second

// Check is one readiness condition.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// Checks is the set of readiness checks of a role.
type Checks struct {
	mu     sync.Mutex
	checks []Check
}

// Add appends a check.
func (c *Checks) Add(name string, fn func(ctx context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks = append(c.checks, Check{Name: name, Func: fn})
}

// Run runs every check concurrently and returns the failures by name.
func (c *Checks) Run(ctx context.Context) map[string]string {
	c.mu.Lock()
	checks := append([]Check(nil), c.checks...)
	c.mu.Unlock()

	var mu sync.Mutex
	failed := map[string]string{}
	var wg sync.WaitGroup
	for _, ch := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			defer cancel()
			if err := ch.Func(cctx); err != nil {
				mu.Lock()
				failed[ch.Name] = err.Error()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed
}

type readiness struct {
	Status  string            `json:"status"`
	Checks  []string          `json:"checks"`
	Reasons map[string]string `json:"reasons,omitempty"`
}

// Register adds /healthz, /readyz and, unless gatherer is nil, /metrics to
// mux.
func Register(mux *http.ServeMux, checks *Checks, gatherer prometheus.Gatherer) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		failed := checks.Run(r.Context())
		names := make([]string, 0)
		checks.mu.Lock()
		for _, c := range checks.checks {
			names = append(names, c.Name)
		}
		checks.mu.Unlock()
		sort.Strings(names)
		if len(failed) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, readiness{Status: "unready", Checks: names, Reasons: failed})
			return
		}
		writeJSON(w, http.StatusOK, readiness{Status: "ready", Checks: names})
	})
	if gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
