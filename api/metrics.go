package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// StreamOperation is the long-lived SSE stream: its duration is the
// connection's life, not a response time, and alerts leave it out.
const StreamOperation = "streamNotifications"

// requestDuration is the API's response-time histogram. The operation
// label is the huma operation id, or the route pattern of a plain route
// (health, metrics, callbacks), or "unmatched": a bounded set that never
// carries an id from the path.
type requestDuration struct {
	hist *prometheus.HistogramVec
	ops  map[string]string // "METHOD /path/{param}" -> operation id
}

func newRequestDuration(reg prometheus.Registerer, spec *huma.OpenAPI) (*requestDuration, error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "rfd", Name: "http_request_duration_seconds",
		Help:    "API response time, by operation, method and status code.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"operation", "method", "status"})
	if err := reg.Register(h); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		h = are.ExistingCollector.(*prometheus.HistogramVec)
	}
	ops := map[string]string{}
	for path, item := range spec.Paths {
		for method, op := range map[string]*huma.Operation{
			http.MethodGet: item.Get, http.MethodPost: item.Post, http.MethodPut: item.Put,
			http.MethodPatch: item.Patch, http.MethodDelete: item.Delete,
		} {
			if op != nil && op.OperationID != "" {
				ops[method+" "+path] = op.OperationID
			}
		}
	}
	return &requestDuration{hist: h, ops: ops}, nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush keeps the SSE stream working through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (d *requestDuration) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		// ServeMux sets r.Pattern on the request it routed.
		op := "unmatched"
		if r.Pattern != "" {
			op = r.Pattern
			if id, ok := d.ops[r.Pattern]; ok {
				op = id
			}
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		d.hist.WithLabelValues(op, r.Method, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
	})
}
