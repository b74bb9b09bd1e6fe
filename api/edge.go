package api

// The edge: what every request meets before and around its operation.
//
//   - Every response says X-Content-Type-Options: nosniff.
//   - A path no route matches (404) or a method the path does not take (405)
//     is answered with problem+json, like every other error, and so is an
//     error net/http writes itself before any handler runs (431 for headers
//     over MaxHeaderBytes, 400 for a malformed request): ProblemListener.
//   - Text no database can store (a NUL character or invalid UTF-8) in a
//     path or query parameter, a header parameter or anywhere in a JSON
//     body is refused with 422 naming the field, before any work is done,
//     and so is a JSON body that gives a property twice.
//   - The $schema links of response bodies are built from RFD_PUBLIC_URL,
//     never from the request's Host, X-Forwarded-Host or Forwarded headers.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/rfd-notify/rfd/internal/core/events"
)

// MaxHeaderBytes bounds the request line and headers of every request; a
// larger one is 431.
const MaxHeaderBytes = 64 << 10

// problemContentType is the media type of RFC 9457 problem details.
const problemContentType = "application/problem+json"

// edge wraps the mux: nosniff on every response, and problem+json for a
// request no route takes.
func (s *Server) edge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h, pattern := s.mux.Handler(r)
		if pattern != "" {
			next.ServeHTTP(w, r)
			return
		}
		// The mux's own answer (404, or 405 with Allow) is plain text:
		// keep its status and Allow, and say it as problem+json.
		rec := &headerRecorder{header: http.Header{}, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		detail := "no operation is served at this path; /openapi.yaml lists them"
		if rec.status == http.StatusMethodNotAllowed {
			detail = "this path does not take the method " + strconv.Quote(truncate(r.Method, 32)) + "; Allow lists those it takes"
			w.Header().Set("Allow", rec.header.Get("Allow"))
		}
		writeProblemJSON(w, rec.status, detail)
	})
}

// headerRecorder keeps the status and headers of a response and drops its
// body.
type headerRecorder struct {
	header http.Header
	status int
}

func (r *headerRecorder) Header() http.Header         { return r.header }
func (r *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *headerRecorder) WriteHeader(status int)      { r.status = status }

// writeProblemJSON answers status with a problem+json body in the shape of
// huma's errors.
func writeProblemJSON(w http.ResponseWriter, status int, detail string) {
	body, _ := json.Marshal(huma.NewError(status, detail))
	w.Header().Set("Content-Type", problemContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// ProblemListener wraps a listener so that the errors net/http answers by
// itself, before any handler runs (431 Request Header Fields Too Large
// for headers over the server's MaxHeaderBytes, 400 for a malformed
// request, 501 for an unknown transfer encoding), are problem+json like
// every other error instead of text/plain.
func ProblemListener(l net.Listener) net.Listener { return problemListener{l} }

type problemListener struct{ net.Listener }

func (l problemListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &problemConn{Conn: c}, nil
}

// problemConn rewrites net/http's own error responses as it writes them.
type problemConn struct{ net.Conn }

func (c *problemConn) Write(b []byte) (int, error) {
	if p, ok := rawErrorAsProblem(b); ok {
		if _, err := c.Conn.Write(p); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// CloseWrite keeps net/http's graceful close of a connection it refused
// (it half-closes, then lingers so the client reads the answer).
func (c *problemConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// rawErrorHeaders are the headers of net/http's own error responses
// (net/http.(*conn).serve), which it writes to the connection in one call
// as "HTTP/1.1 <status>" + rawErrorHeaders + "<status>". A handler's
// response never has this shape: the server adds a Date header to it.
const rawErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// rawErrorAsProblem returns the problem+json version of one of net/http's
// own error responses, and false for anything else.
func rawErrorAsProblem(b []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(b, []byte("HTTP/1.1 "))
	if !ok {
		return nil, false
	}
	statusLine, body, ok := bytes.Cut(rest, []byte(rawErrorHeaders))
	if !ok || !bytes.Equal(statusLine, body) || len(statusLine) < 4 {
		return nil, false
	}
	code, err := strconv.Atoi(string(statusLine[:3]))
	if err != nil || code < 400 || code > 599 {
		return nil, false
	}
	detail := http.StatusText(code)
	if _, text, ok := strings.Cut(string(statusLine), ": "); ok {
		detail = text // a fixed text of net/http, e.g. "missing required Host header"
	}
	if code == http.StatusRequestHeaderFieldsTooLarge {
		detail = fmt.Sprintf("the request line and headers are larger than the server accepts (%d bytes)", MaxHeaderBytes)
	}
	problem, _ := json.Marshal(huma.NewError(code, detail))
	var out bytes.Buffer
	fmt.Fprintf(&out, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
		statusLine, problemContentType, len(problem))
	out.Write(problem)
	return out.Bytes(), true
}

// refuseUnstorableText is the huma middleware that refuses, with 422
// naming the field and never quoting it, text no database can store (a
// NUL character, raw or escaped, or invalid UTF-8) in the operation's path
// parameters, any query parameter, its header parameters or anywhere in a
// JSON body, and a JSON body that gives a property twice (decoders differ
// on which occurrence wins). It runs after authentication, so an
// unauthenticated caller learns nothing about a request's content.
func refuseUnstorableText(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		op := ctx.Operation()
		if op == nil {
			next(ctx)
			return
		}
		if loc, reason := unstorableParameter(ctx, op); loc != "" {
			refuse(api, ctx, loc, reason)
			return
		}
		if op.RequestBody != nil {
			flaw := scanBody(ctx, op)
			if flaw != nil {
				refuse(api, ctx, flaw.Location("body"), flaw.Reason)
				return
			}
		}
		next(ctx)
	}
}

func refuse(api huma.API, ctx huma.Context, location, reason string) {
	_ = huma.WriteErr(api, ctx, http.StatusUnprocessableEntity, "validation failed",
		&huma.ErrorDetail{Location: location, Message: reason})
}

// unstorableParameter returns the location and reason of the first
// parameter holding text no database can store, or "".
func unstorableParameter(ctx huma.Context, op *huma.Operation) (location, reason string) {
	for _, p := range op.Parameters {
		var v string
		switch p.In {
		case "path":
			v = ctx.Param(p.Name)
		case "header":
			v = ctx.Header(p.Name)
		default:
			continue // query parameters are checked below, all of them
		}
		if r := textFlaw(v); r != "" {
			return p.In + "." + p.Name, r
		}
	}
	u := ctx.URL()
	for name, values := range u.Query() {
		loc := (&events.Flaw{Path: []events.PathSegment{{Name: name, Index: -1}}}).Location("query")
		if textFlaw(name) != "" {
			return "query", "has a parameter name that is not valid UTF-8 or contains a NUL character (U+0000)"
		}
		for _, v := range values {
			if r := textFlaw(v); r != "" {
				return loc, r
			}
		}
	}
	return "", ""
}

// textFlaw is the reason s cannot be stored, or "".
func textFlaw(s string) string {
	switch {
	case !utf8.ValidString(s):
		return events.ReasonUTF8
	case strings.IndexByte(s, 0) >= 0:
		return events.ReasonNUL
	}
	return ""
}

// defaultBodyReadTimeout is huma's, for operations that leave it unset.
const defaultBodyReadTimeout = 5 * time.Second

// scanBody reads a JSON body up to the operation's limit and returns its
// first flaw. The body stays readable for the operation: what was read is
// put back in front of the rest. A body over the limit, one that is not
// JSON, or one that cannot be read is the operation's to refuse.
func scanBody(ctx huma.Context, op *huma.Operation) *events.Flaw {
	if ct := ctx.Header("Content-Type"); ct != "" && !strings.Contains(strings.ToLower(ct), "json") {
		return nil
	}
	limit := op.MaxBodyBytes
	if limit <= 0 {
		limit = MaxBodyBytes
	}
	timeout := op.BodyReadTimeout
	if timeout == 0 {
		timeout = defaultBodyReadTimeout
	}
	r, _ := humago.Unwrap(ctx)
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if timeout > 0 {
		_ = ctx.SetReadDeadline(time.Now().Add(timeout))
		defer func() { _ = ctx.SetReadDeadline(time.Time{}) }()
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
	if err != nil || int64(len(body)) >= limit {
		return nil
	}
	flaw, err := events.Scan(body, events.ScanOptions{Duplicates: true})
	if err != nil {
		return nil
	}
	return flaw
}

// documentEdgeRefusals documents the edge's 422 on every operation: any
// query parameter can carry text no database can store, so every
// operation may answer it.
func documentEdgeRefusals(_ *huma.OpenAPI, op *huma.Operation) {
	addProblemResponse(op, http.StatusUnprocessableEntity, &huma.Response{
		Description: "Unprocessable Entity: a parameter holds text no database can store (a NUL character or invalid UTF-8); errors[].location names it.",
	})
}

// trustedSchemaLinks makes the `$schema` links huma puts in response
// bodies start with base (RFD_PUBLIC_URL) instead of the host the request
// names: huma's link transformer reads Host, X-Forwarded-Host and
// Forwarded, which any client sets, so a response would otherwise carry a
// link to wherever the client chose. With base empty huma falls back to
// the spec's first server. It is a create hook that runs after huma's own,
// which adds the transformer.
func trustedSchemaLinks(base string) func(huma.Config) huma.Config {
	base = strings.TrimRight(base, "/")
	return func(c huma.Config) huma.Config {
		for i, t := range c.Transformers {
			c.Transformers[i] = func(ctx huma.Context, status string, v any) (any, error) {
				return t(trustedHost{innerContext: ctx, base: base}, status, v)
			}
		}
		return c
	}
}

// trustedHost is a request context whose host is the configured one and
// which hides the forwarding headers.
type trustedHost struct {
	innerContext
	base string
}

// innerContext lets trustedHost embed a huma.Context, whose Context method
// would clash with a field named Context.
type innerContext huma.Context

func (c trustedHost) Host() string { return c.base }

func (c trustedHost) Header(name string) string {
	switch http.CanonicalHeaderKey(name) {
	case "X-Forwarded-Host", "Forwarded":
		return ""
	}
	return c.innerContext.Header(name)
}
