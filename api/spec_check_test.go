package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/health"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
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
	if ct, body := get("/docs"); !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(body), `apiDescriptionUrl="openapi.yaml"`) {
		t.Errorf("GET /docs: %q %.200s", ct, body)
	}
}

// TestServedSpecNamesRunningServer: the spec a running server publishes
// names that server (RFD_PUBLIC_URL, or else its listen address) as its one
// server, so the docs page's "Try it" calls it and the docs page may
// connect to it; the checked-in spec keeps its stable default.
func TestServedSpecNamesRunningServer(t *testing.T) {
	for _, c := range []struct {
		name, publicURL, httpAddr, want, origin string
	}{
		{"public URL", "https://rfd.example.org/notify/", ":8080", "https://rfd.example.org/notify", "https://rfd.example.org"},
		{"listen address", "", "0.0.0.0:9123", "http://localhost:9123", "http://localhost:9123"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := testenv.New(t, testenv.SQLiteSQL, func(cfg *config.Config) {
				cfg.PublicURL, cfg.HTTPAddr = c.publicURL, c.httpAddr
			})
			srv, err := api.NewServer(withServices(t, api.Deps{Config: env.Config, DB: env.DB, Logger: env.Logger}), &health.Checks{}, prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(srv.Handler())
			defer ts.Close()
			for _, path := range []string{"/openapi.json", "/openapi-3.0.json"} {
				resp, err := http.Get(ts.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				var spec struct {
					Servers []struct {
						URL string `json:"url"`
					} `json:"servers"`
				}
				err = json.NewDecoder(resp.Body).Decode(&spec)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				if len(spec.Servers) != 1 || spec.Servers[0].URL != c.want {
					t.Errorf("GET %s: servers %+v, want [%s]", path, spec.Servers, c.want)
				}
			}
			resp, err := http.Get(ts.URL + "/docs")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' "+c.origin+";") {
				t.Errorf("GET /docs: Content-Security-Policy %q does not let Try it connect to %s", csp, c.origin)
			}
		})
	}
	// What `rfd openapi` prints and api/openapi.yaml holds (TestCheckedInSpec).
	if servers := api.New(&health.Checks{}, prometheus.NewRegistry()).OpenAPI().Servers; len(servers) != 1 || servers[0].URL != "http://localhost:8080" {
		t.Errorf("the checked-in spec's servers are %+v, want the default http://localhost:8080", servers)
	}
}
