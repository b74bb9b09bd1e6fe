package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/health"
)

// operation is one operation of the spec, with what a request to it needs.
type operation struct {
	method, path string
	op           *huma.Operation
}

func operations(t *testing.T, oapi *huma.OpenAPI) []operation {
	t.Helper()
	var out []operation
	for path, item := range oapi.Paths {
		for method, op := range map[string]*huma.Operation{
			http.MethodGet: item.Get, http.MethodPost: item.Post, http.MethodPut: item.Put,
			http.MethodPatch: item.Patch, http.MethodDelete: item.Delete,
		} {
			if op != nil {
				out = append(out, operation{method: method, path: path, op: op})
			}
		}
	}
	slices.SortFunc(out, func(a, b operation) int { return strings.Compare(a.op.OperationID, b.op.OperationID) })
	if len(out) < 25 {
		t.Fatalf("only %d operations in the spec", len(out))
	}
	return out
}

// credentials are what each security scheme of the operations needs.
type credentials struct{ doctor, apiKey string }

func (c credentials) of(op *huma.Operation) string {
	for _, req := range op.Security {
		if _, ok := req[api.SchemeDoctor]; ok {
			return c.doctor
		}
		if _, ok := req[api.SchemeAPIKey]; ok {
			return c.apiKey
		}
	}
	return ""
}

// target is the operation's path with every path parameter set to "x",
// except name (if not "") set to raw, which is escaped.
func (o operation) target(name, raw string) string {
	p := o.path
	for _, prm := range o.op.Parameters {
		if prm.In != "path" {
			continue
		}
		v := "x"
		if prm.Name == name {
			v = url.PathEscape(raw)
		}
		p = strings.ReplaceAll(p, "{"+prm.Name+"}", v)
	}
	return p
}

// firstBodyProperty is a top-level property of the operation's JSON
// body, or "" when its schema names none.
func firstBodyProperty(oapi *huma.OpenAPI, op *huma.Operation) string {
	mt := op.RequestBody.Content["application/json"]
	if mt == nil || mt.Schema == nil {
		return ""
	}
	s := mt.Schema
	if s.Ref != "" {
		s = oapi.Components.Schemas.SchemaFromRef(s.Ref)
	}
	var names []string
	for name := range s.Properties {
		if name != "$schema" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

// refused checks r is the edge's 422 naming location, without the value.
func refused(t *testing.T, r response, location string) {
	t.Helper()
	p := r.problem(t, http.StatusUnprocessableEntity)
	if !p.hasLocation(location) {
		t.Errorf("errors %+v, want one at %s", p.Errors, location)
	}
	for _, leak := range []string{"a\x00b", `a\u0000b`, "SECRET"} {
		if strings.Contains(string(r.body), leak) {
			t.Errorf("the answer echoes the refused value: %s", r.body)
		}
	}
}

// TestUnstorableTextRefusedOnEveryOperation: on every operation of the
// spec, a NUL character (escaped %00 or \u0000) or invalid UTF-8 in a path
// parameter, any query parameter, a header parameter or a JSON body field is
// refused with 422 problem+json naming the field, never echoing it, before
// the operation does any work; so is a body giving a property twice.
func TestUnstorableTextRefusedOnEveryOperation(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-a")
		creds := credentials{doctor: f.token("doc-a"), apiKey: f.apiKey("edge", auth.Scopes...)}
		oapi := f.server.OpenAPI()
		counted := map[string]int{}
		for _, o := range operations(t, oapi) {
			t.Run(o.op.OperationID, func(t *testing.T) {
				tok := creds.of(o.op)
				// Any query parameter, declared or not.
				r := f.do(o.method, o.target("", "")+"?edge_probe=a%00bSECRET", tok, nil)
				refused(t, r, "query.edge_probe")
				counted["query"]++
				for _, prm := range o.op.Parameters {
					switch prm.In {
					case "path":
						for _, bad := range []string{"a\x00bSECRET", "a\xffbSECRET"} {
							refused(t, f.do(o.method, o.target(prm.Name, bad), tok, nil), "path."+prm.Name)
						}
						counted["path"]++
					case "query":
						for _, bad := range []string{"a%00bSECRET", "a%FFbSECRET"} {
							refused(t, f.do(o.method, o.target("", "")+"?"+prm.Name+"="+bad, tok, nil), "query."+prm.Name)
						}
						counted["query"]++
					case "header":
						// Go's client refuses to send a NUL in a header
						// (and net/http would refuse it with 400).
						refused(t, f.do(o.method, o.target("", ""), tok, nil, prm.Name, "a\xffbSECRET"), "header."+prm.Name)
						counted["header"]++
					}
				}
				if o.op.RequestBody == nil {
					return
				}
				field := firstBodyProperty(oapi, o.op)
				if field == "" {
					field = "x"
				}
				for _, body := range []string{
					fmt.Sprintf(`{%q: "a\u0000bSECRET"}`, field),
					fmt.Sprintf("{%q: \"a\xffbSECRET\"}", field),
					fmt.Sprintf(`{%q: {"deep": ["ok", "a\u0000bSECRET"]}}`, field),
				} {
					want := "body." + field
					if strings.Contains(body, "deep") {
						want += ".deep[1]"
					}
					refused(t, f.do(o.method, o.target("", ""), tok, body), want)
				}
				dup := f.do(o.method, o.target("", ""), tok, fmt.Sprintf(`{%q: 1, %q: 2}`, field, field))
				refused(t, dup, "body."+field)
				counted["body"]++
			})
		}
		t.Logf("checked %v", counted)
		if counted["path"] < 10 || counted["header"] < 3 || counted["body"] < 8 {
			t.Errorf("too few parameters and bodies checked: %v", counted)
		}
	})
}

// TestIngestionRefusesNULBeforePublishing: the case. An event with
// a NUL in the patient's name is 422 naming body.patient.display_name, and
// nothing is published: the first message on the topic is the healthy
// event sent after it, so no consumer retries the bad one and nothing
// waits behind it.
func TestIngestionRefusesNULBeforePublishing(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		topic := f.env.Config.TopicCheckupEvents
		f.env.EnsureTopics(t, topic)
		published := f.subscribe(topic)
		key := f.apiKey("lab", auth.Scopes...)
		event := func(name string) string {
			return `{"event_type":"result_available","checkup_id":"CU-1","order_id":"ORD-1",` +
				`"patient":{"ref":"PT-1","display_name":"` + name + `","birth_year":1970},` +
				`"referring_doctors":[{"external_user_id":"doc-a","role":"primary"}],"occurred_at":"2026-11-25T02:30:00Z",` +
				`"result":{"version":1,"status":"final","critical":false,"tests":[{"code":"K","name":"Potassium","value":"6.9","unit":"mmol/L","flag":"HH"}]}}`
		}
		r := f.do(http.MethodPost, "/v1/events/checkup-events", key, event(`Somchai\u0000Jaidee`), "ce-id", "bad-1")
		refused(t, r, "body.patient.display_name")
		if strings.Contains(string(r.body), "Somchai") {
			t.Errorf("the answer echoes the patient's name: %s", r.body)
		}
		f.do(http.MethodPost, "/v1/events/checkup-events", key, event("Somchai Jaidee"), "ce-id", "good-1").ok(t, http.StatusAccepted, nil)
		if m := receive(t, published); m.Metadata.Get("ce_id") != "good-1" {
			t.Fatalf("first message on the topic is %q, want good-1", m.Metadata.Get("ce_id"))
		}
	})
}

// TestDuplicateKeysRefused: a body giving a property twice is 422 naming
// it; which occurrence would win is the decoder's guess.
func TestDuplicateKeysRefused(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-a")
		tok := f.token("doc-a")
		refused(t, f.do(http.MethodPatch, "/v1/me/preferences", tok, `{"digest":"off","quiet_hours":{"start":"22:00","end":"07:00","start":""}}`),
			"body.quiet_hours.start")
		f.do(http.MethodPatch, "/v1/me/preferences", tok, `{"digest":"off","quiet_hours":{"start":"22:00","end":"07:00"}}`).ok(t, http.StatusOK, nil)
	})
}

// TestNosniffAndProblemJSONAtTheEdge: every response says nosniff; a path
// nothing serves is 404 and a method a path does not take is 405 (with
// Allow), both problem+json like every other error.
func TestNosniffAndProblemJSONAtTheEdge(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-a")
		tok := f.token("doc-a")
		for _, tc := range []struct {
			method, path, token string
			status              int
		}{
			{http.MethodGet, "/v1/me", tok, http.StatusOK},
			{http.MethodGet, "/v1/me", "", http.StatusUnauthorized},
			{http.MethodGet, "/v1/notifications?limit=1000", tok, http.StatusUnprocessableEntity},
			{http.MethodGet, "/healthz", "", http.StatusOK},
			{http.MethodGet, "/openapi.yaml", "", http.StatusOK},
			{http.MethodGet, "/v1/no-such-thing", tok, http.StatusNotFound},
			{http.MethodGet, "/", "", http.StatusNotFound},
			{http.MethodDelete, "/v1/me", tok, http.StatusMethodNotAllowed},
			{http.MethodPut, "/v1/notifications", "", http.StatusMethodNotAllowed},
		} {
			r := f.do(tc.method, tc.path, tc.token, nil)
			if r.status != tc.status {
				t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.path, r.status, tc.status, r.body)
				continue
			}
			if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("%s %s: X-Content-Type-Options %q, want nosniff", tc.method, tc.path, got)
			}
			if tc.status >= 400 {
				p := r.problem(t, tc.status)
				if p.Detail == "" {
					t.Errorf("%s %s: problem without detail: %s", tc.method, tc.path, r.body)
				}
			}
			if tc.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
				t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
			}
		}
	})
}

// TestHeadersTooLargeAreProblemJSON: request headers over MaxHeaderBytes
// are 431 problem+json with nosniff, from a real listener (net/http
// answers this before any handler runs), and the connection's normal
// answers are untouched.
func TestHeadersTooLargeAreProblemJSON(t *testing.T) {
	srv := api.New(&health.Checks{}, prometheus.NewRegistry())
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Config.MaxHeaderBytes = api.MaxHeaderBytes
	ts.Listener = api.ProblemListener(ts.Listener)
	ts.Start()
	t.Cleanup(ts.Close)

	req, err := http.NewRequest(http.MethodGet, ts.URL+"/v1/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("a", api.MaxHeaderBytes+8<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := response{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(new(map[string]any)); err != nil {
		t.Fatalf("431 body is not JSON: %v", err)
	}
	if r.status != http.StatusRequestHeaderFieldsTooLarge || !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") ||
		r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("status %d, headers %v: want 431 problem+json with nosniff", r.status, r.header)
	}

	// A malformed request (no Host on HTTP/1.1) is refused by net/http too.
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	bad, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Body.Close()
	if bad.StatusCode != http.StatusBadRequest || !strings.HasPrefix(bad.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("no Host: %d %s, want 400 problem+json", bad.StatusCode, bad.Header.Get("Content-Type"))
	}

	ok := call(t, ts.URL, http.MethodGet, "/healthz", "", nil)
	if ok.status != http.StatusOK {
		t.Fatalf("/healthz through the listener: %d %s", ok.status, ok.body)
	}
}

// TestSchemaLinkIsNotTakenFromTheRequest: the $schema link of a body and
// its Link header start with RFD_PUBLIC_URL whatever Host, X-Forwarded-Host
// or Forwarded the client sends.
func TestSchemaLinkIsNotTakenFromTheRequest(t *testing.T) {
	const public = "https://rfd.hospital.example"
	f := newFixture(t, combinations[0], func(c *config.Config) { c.PublicURL = public + "/" })
	f.registerDoctor("doc-a")
	tok := f.token("doc-a")
	for _, spoof := range [][]string{
		{"X-Forwarded-Host", "evil.example"},
		{"Forwarded", `host="evil.example";proto=https`},
		{"Host", "evil.example"},
		nil,
	} {
		var r response
		if len(spoof) > 0 && spoof[0] == "Host" {
			r = withHost(t, f.url+"/v1/me", tok, spoof[1])
		} else {
			r = f.do(http.MethodGet, "/v1/me", tok, nil, spoof...)
		}
		var me struct {
			Schema string `json:"$schema"`
		}
		r.ok(t, http.StatusOK, &me)
		if !strings.HasPrefix(me.Schema, public+"/schemas/") || strings.Contains(me.Schema, "evil") {
			t.Errorf("%v: $schema %q, want under %s", spoof, me.Schema, public)
		}
		if link := r.header.Get("Link"); strings.Contains(link, "evil") {
			t.Errorf("%v: Link %q", spoof, link)
		}
	}
}

// withHost GETs u with the Host header set to host.
func withHost(t *testing.T, u, token, host string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&body)
	return response{status: resp.StatusCode, header: resp.Header, body: []byte(body.String())}
}

// TestGetPreferences: GET /v1/me/preferences answers what PATCH answers.
func TestGetPreferences(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-a")
		tok := f.token("doc-a")
		var patched, got map[string]any
		f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"digest": "hourly", "quiet_hours": map[string]any{"start": "22:00", "end": "07:00"}}).
			ok(t, http.StatusOK, &patched)
		r := f.do(http.MethodGet, "/v1/me/preferences", tok, nil)
		r.ok(t, http.StatusOK, &got)
		if fmt.Sprint(got) != fmt.Sprint(patched) {
			t.Fatalf("GET = %v\nPATCH = %v", got, patched)
		}
		if got["digest"] != "hourly" {
			t.Fatalf("digest = %v", got["digest"])
		}
		f.do(http.MethodGet, "/v1/me/preferences", "", nil).problem(t, http.StatusUnauthorized)
	})
}
