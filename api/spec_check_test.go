package api_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/health"
)

// TestCheckedInSpec: api/openapi.yaml and api/openapi-3.0.yaml are what the
// code describes. They are what integrators (and the generated client in
// api/client) build from, so a change to an operation must regenerate them.
func TestCheckedInSpec(t *testing.T) {
	v31, v30, err := api.SpecYAML()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{api.SpecFile: v31, api.Spec30File: v30} {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v: run go generate ./...", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("api/%s is stale: run go generate ./... (first difference at line %d)", name, firstDiffLine(got, want))
		}
	}
}

func firstDiffLine(a, b []byte) int {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

// TestServedSpec: the server publishes the description it is built from —
// OpenAPI 3.1 as JSON and YAML, the 3.0 downgrade for generators that lack
// 3.1 — and the docs page, without authentication.
func TestServedSpec(t *testing.T) {
	srv := api.New(&health.Checks{}, prometheus.NewRegistry())
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	v31, v30, err := api.SpecYAML()
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (string, []byte) {
		t.Helper()
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return resp.Header.Get("Content-Type"), body
	}
	for _, c := range []struct {
		path, contentType, version string
		want                       []byte
	}{
		{"/openapi.json", "application/openapi+json", `"openapi":"3.1`, nil},
		{"/openapi.yaml", "application/openapi+yaml", "openapi: 3.1", v31},
		{"/openapi-3.0.json", "application/openapi+json", `"openapi":"3.0`, nil},
		{"/openapi-3.0.yaml", "application/openapi+yaml", "openapi: 3.0", v30},
	} {
		ct, body := get(c.path)
		if !strings.HasPrefix(ct, c.contentType) || !strings.Contains(string(body), c.version) {
			t.Errorf("GET %s: Content-Type %q, body without %q", c.path, ct, c.version)
		}
		if c.want != nil && !bytes.Equal(body, c.want) {
			t.Errorf("GET %s differs from api.SpecYAML", c.path)
		}
	}
	if ct, body := get("/docs"); !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(body), "/openapi") {
		t.Errorf("GET /docs: %q %.200s", ct, body)
	}
}
