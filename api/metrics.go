package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rfd-notify/rfd/internal/platform/tracing"
)

// StreamOperation is the long-lived SSE stream: its duration is the
// connection's life, not a response time, and alerts leave it out.
const StreamOperation = "streamNotifications"

// instrumentation measures every request: a server span (the child of the
// caller's traceparent, if any) and, when a registry is given, the
// response-time histogram. The operation is the huma operation id, or the
// route pattern of a plain route (health, metrics, callbacks), or
// "unmatched": a bounded set that never carries an id from the path.
type instrumentation struct {
	hist *prometheus.HistogramVec // nil: no histogram
	ops  map[string]string        // "METHOD /path/{param}" -> operation id
}

func newInstrumentation(spec *huma.OpenAPI) *instrumentation {
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
	return &instrumentation{ops: ops}
}

// measure registers the response-time histogram in reg.
func (in *instrumentation) measure(reg prometheus.Registerer) error {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "rfd", Name: "http_request_duration_seconds",
		Help:    "API response time, by operation, method and status code.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"operation", "method", "status"})
	if err := reg.Register(h); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return err
		}
		h = are.ExistingCollector.(*prometheus.HistogramVec)
	}
	in.hist = h
	return nil
}

// methodLabel is the method as a label value: one of the methods the API
// answers, or "other". The method is whatever string a client sends, and
// each new label value is a new series kept for the life of the process.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
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

func (in *instrumentation) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx := tracing.ExtractHTTP(r.Context(), r.Header)
		method := methodLabel(r.Method)
		ctx, span := tracing.Tracer().Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		// ServeMux sets r.Pattern on the request it routed.
		op := "unmatched"
		if r.Pattern != "" {
			op = r.Pattern
			if id, ok := in.ops[r.Pattern]; ok {
				op = id
			}
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		span.SetName(method + " " + op)
		span.SetAttributes(attribute.String("http.request.method", method), attribute.String("http.route", r.Pattern),
			attribute.String("rfd.operation", op), attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		if in.hist != nil {
			in.hist.WithLabelValues(op, method, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
		}
	})
}
