package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/rfd-notify/rfd/api"
)

// TestBOLAWalk walks EVERY doctor-scoped operation of the generated spec
// with doctor B's token and doctor A's object ids. An operation naming an
// object must not answer 2xx; no answer may carry any of A's data; and A's
// rows must be exactly as before. A new doctor-scoped operation is walked
// without touching this test — and one with a path parameter the walk
// cannot fill fails it until the walk is taught.
func TestBOLAWalk(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		seedDoctorA(f)
		f.registerDoctor("doc-b")
		f.result("CHK-B", 1, "final", true, "Boonsri Rakdee", "doc-b")
		f.order("ORD-CHK-B", 1, "placed", "doc-b")
		tokA, tokB := f.token("doc-a"), f.token("doc-b")

		deviceA := "fcm-token-doc-a:APA91bHwalk"
		f.do(http.MethodPut, "/v1/me/devices/"+deviceA, tokA, map[string]any{"platform": "android"}).ok(t, http.StatusCreated, nil)
		f.do(http.MethodPatch, "/v1/me/preferences", tokA, map[string]any{"digest": "hourly"}).ok(t, http.StatusOK, nil)

		// Doctor C asks A to cover for them: a cover only A may decide.
		f.registerDoctor("doc-c")
		var asked api.Preferences
		f.do(http.MethodPatch, "/v1/me/preferences", f.token("doc-c"), map[string]any{"covering": map[string]any{
			"doctor_external_id": "doc-a", "starts_at": time.Now().UTC().Format(time.RFC3339),
			"ends_at": time.Now().UTC().Add(24 * time.Hour).Format(time.RFC3339)}}).ok(t, http.StatusOK, &asked)

		criticalA := f.str(`SELECT id FROM notifications WHERE checkup_id = 'CHK-2'`)
		// Path parameters by the collection they identify, filled with A's objects.
		objectsA := map[string]string{
			"/v1/notifications/{id}":        criticalA,
			"/v1/orders/{id}":               "ORD-CHK-1",
			"/v1/checkups/{id}":             "CHK-1",
			"/v1/me/devices/{token}":        deviceA,
			"/v1/me/covering-requests/{id}": asked.Covering.ID,
		}
		// Anything of A's that must never reach B.
		markers := []string{"Somchai", "Malee", "PT-CHK-1", "PT-CHK-2", "ORD-CHK-1", `"CHK-1"`, `"CHK-2"`, deviceA,
			f.str(`SELECT id FROM doctors WHERE external_user_id = 'doc-a'`), "Dr. doc-a"}
		markers = append(markers, f.notificationIDs("doc-a", "")...)

		before := stateOfA(f)
		spec := f.server.OpenAPI()
		var walked, withObject int
		for _, path := range sortedPaths(spec) {
			for method, op := range operationsOf(spec.Paths[path]) {
				if !doctorScoped(op) {
					continue
				}
				concrete, objectPath := fillPath(t, path, objectsA)
				body := requestExample(t, spec, op)
				r := walkCall(t, f.url, method, concrete, tokB, body)
				t.Logf("B %s %s -> %d", method, concrete, r.status)
				if objectPath {
					withObject++
					if r.status >= 200 && r.status < 300 {
						t.Errorf("BOLA: %s %s (%s) answered %d to doctor B with doctor A's object: %s", method, concrete, op.OperationID, r.status, r.body)
					}
				}
				for _, m := range markers {
					if strings.Contains(string(r.body), m) {
						t.Errorf("BOLA: %s %s (%s) shows doctor B doctor A's %q: %s", method, concrete, op.OperationID, m, r.body)
					}
				}
				walked++
			}
		}
		if walked < 13 || withObject < 7 {
			t.Fatalf("walked %d doctor operations, %d with an object: the spec lost operations?", walked, withObject)
		}
		if after := stateOfA(f); !reflect.DeepEqual(before, after) {
			t.Errorf("doctor B's walk changed doctor A's rows:\nbefore %v\nafter  %v", before, after)
		}

		// The ids are real: A reaches each of their own objects.
		for path, id := range objectsA {
			if strings.Contains(path, "devices") {
				continue
			}
			f.do(http.MethodGet, strings.Replace(path, "{id}", id, 1), tokA, nil).ok(t, http.StatusOK, nil)
		}
	})
}

// stateOfA is everything of doctor A a foreign write could change.
func stateOfA(f *fixture) []string {
	f.t.Helper()
	rows, err := f.env.DB.QueryContext(context.Background(), `
SELECT 'n:' || n.id || ':' || COALESCE(CAST(n.read_at AS TEXT), '-') || ':' || COALESCE(CAST(n.acknowledged_at AS TEXT), '-') || ':' || n.state
FROM notifications n JOIN doctors d ON d.id = n.doctor_id WHERE d.external_user_id = 'doc-a'
UNION ALL
SELECT 'd:' || dl.id || ':' || dl.status FROM deliveries dl JOIN notifications n ON n.id = dl.notification_id JOIN doctors d ON d.id = n.doctor_id WHERE d.external_user_id = 'doc-a'
UNION ALL
SELECT 'v:' || v.token || ':' || v.platform || ':' || v.doctor_id FROM devices v JOIN doctors d ON d.id = v.doctor_id WHERE d.external_user_id = 'doc-a'
UNION ALL
SELECT 'p:' || p.digest || ':' || p.quiet_start || ':' || CAST(p.channels AS TEXT) FROM doctor_preferences p JOIN doctors d ON d.id = p.doctor_id WHERE d.external_user_id = 'doc-a'
UNION ALL
SELECT 'g:' || g.id || ':' || g.status FROM delegations g JOIN doctors d ON d.id = g.covering_doctor_id WHERE d.external_user_id = 'doc-a'`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func sortedPaths(spec *huma.OpenAPI) []string {
	var out []string
	for p := range spec.Paths {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func operationsOf(item *huma.PathItem) map[string]*huma.Operation {
	out := map[string]*huma.Operation{}
	for m, op := range map[string]*huma.Operation{
		http.MethodGet: item.Get, http.MethodPut: item.Put, http.MethodPost: item.Post, http.MethodDelete: item.Delete,
		http.MethodPatch: item.Patch, http.MethodHead: item.Head, http.MethodOptions: item.Options, http.MethodTrace: item.Trace,
	} {
		if op != nil {
			out[m] = op
		}
	}
	return out
}

func doctorScoped(op *huma.Operation) bool {
	for _, req := range op.Security {
		if _, ok := req[api.SchemeDoctor]; ok {
			return true
		}
	}
	return false
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// fillPath puts A's object into the path's parameter, found by the
// collection it belongs to (the path up to and including the parameter).
func fillPath(t *testing.T, path string, objects map[string]string) (string, bool) {
	t.Helper()
	locs := pathParam.FindAllStringIndex(path, -1)
	if len(locs) == 0 {
		return path, false
	}
	if len(locs) > 1 {
		t.Fatalf("walk: %s has %d path parameters; teach the walk to fill them", path, len(locs))
	}
	prefix := path[:locs[0][1]]
	id, ok := objects[prefix]
	if !ok {
		t.Fatalf("walk: no object of doctor A for %s (in %s): add one to the walk", prefix, path)
	}
	return strings.Replace(path, path[locs[0][0]:locs[0][1]], id, 1), true
}

// requestExample builds a valid request body from the spec's own examples;
// nil for operations without a body.
func requestExample(t *testing.T, spec *huma.OpenAPI, op *huma.Operation) any {
	t.Helper()
	if op.RequestBody == nil {
		return nil
	}
	mt := op.RequestBody.Content["application/json"]
	if mt == nil || mt.Schema == nil {
		t.Fatalf("walk: %s has a body that is not JSON", op.OperationID)
	}
	v := exampleOf(spec, mt.Schema, 0)
	if v == nil && op.RequestBody.Required {
		t.Fatalf("walk: cannot build a body for %s from the spec's examples", op.OperationID)
	}
	return v
}

func exampleOf(spec *huma.OpenAPI, s *huma.Schema, depth int) any {
	if s == nil || depth > 8 {
		return nil
	}
	if s.Ref != "" {
		s = spec.Components.Schemas.SchemaFromRef(s.Ref)
	}
	if len(s.Examples) > 0 {
		return s.Examples[0]
	}
	if s.Type == huma.TypeObject {
		m := map[string]any{}
		for name, p := range s.Properties {
			if p.ReadOnly {
				continue
			}
			if v := exampleOf(spec, p, depth+1); v != nil {
				m[name] = v
			}
		}
		return m
	}
	return nil
}

// walkCall calls the API; an event stream is read for a moment only.
func walkCall(t *testing.T, base, method, path, token string, body any) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(raw))
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var sb strings.Builder
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				sb.WriteString(sc.Text() + "\n")
			}
		}()
		select {
		case <-done:
		case <-time.After(time.Second):
			cancel()
			<-done
		}
		return response{status: resp.StatusCode, header: resp.Header, body: []byte(sb.String())}
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}
