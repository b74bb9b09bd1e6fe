package docsui_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/rfd-notify/rfd/api/docsui"
)

// TestPage: the page loads its script and stylesheet from the server
// itself, each with the Subresource Integrity hash of the bytes the server
// serves, under a policy that allows nothing from elsewhere; the assets are
// served with their types and a year's immutable cache, gzipped when the
// browser takes it.
func TestPage(t *testing.T) {
	mux := http.NewServeMux()
	if err := docsui.Register(mux, docsui.Page{Title: "T", SpecURL: "openapi.yaml", TryItOrigins: []string{"https://rfd.example.org/notify"}}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(mux)
	defer ts.Close()
	// Go's client would gunzip for us: ask explicitly to see the encoding.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(path string, gz bool) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if gz {
			req.Header.Set("Accept-Encoding", "gzip, deflate")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return resp, body
	}

	resp, page := get(docsui.Path, false)
	wantCSP := "default-src 'none'; base-uri 'none'; connect-src 'self' https://rfd.example.org; form-action 'none'; frame-ancestors 'none'; " +
		"script-src 'self'; style-src 'self' 'unsafe-inline'; sandbox allow-same-origin allow-scripts allow-popups allow-popups-to-escape-sandbox allow-downloads"
	if got := resp.Header.Get("Content-Security-Policy"); got != wantCSP {
		t.Errorf("Content-Security-Policy:\n got %s\nwant %s", got, wantCSP)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("page Content-Type %q", ct)
	}
	if strings.Contains(string(page), "//") {
		t.Errorf("the page names another origin:\n%s", page)
	}
	if !strings.Contains(string(page), `apiDescriptionUrl="openapi.yaml"`) {
		t.Errorf("the page does not render openapi.yaml:\n%s", page)
	}

	refs := regexp.MustCompile(`(?:src|href)="([^"]+)" integrity="([^"]+)"`).FindAllStringSubmatch(string(page), -1)
	if len(refs) != 2 {
		t.Fatalf("want a script and a stylesheet with integrity, got %q in\n%s", refs, page)
	}
	for _, ref := range refs {
		// Relative to the page (/docs), so under / on the server.
		path, integrity := "/"+ref[1], ref[2]
		if !strings.HasPrefix(path, docsui.Path+"/assets/"+docsui.Version+"/") {
			t.Errorf("%s is not under the pinned version's path", path)
		}
		resp, body := get(path, false)
		sum := sha512.Sum384(body)
		if want := "sha384-" + base64.StdEncoding.EncodeToString(sum[:]); integrity != want {
			t.Errorf("%s: integrity %s, the served bytes are %s", path, integrity, want)
		}
		wantType := map[bool]string{true: "text/javascript; charset=utf-8", false: "text/css; charset=utf-8"}[strings.HasSuffix(path, ".js")]
		if ct := resp.Header.Get("Content-Type"); ct != wantType {
			t.Errorf("%s: Content-Type %q, want %q", path, ct, wantType)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", path, cc)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}

		resp, gz := get(path, true)
		if resp.Header.Get("Content-Encoding") != "gzip" || len(gz) >= len(body) {
			t.Errorf("%s with Accept-Encoding gzip: Content-Encoding %q, %d bytes of %d", path, resp.Header.Get("Content-Encoding"), len(gz), len(body))
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(plain, body) {
			t.Errorf("%s: gzipped body does not decompress to the asset (%v)", path, err)
		}
	}
}

// TestRegisterRefusesBadOrigin: a Try-it origin that is not an absolute
// http(s) URL would put a bad source in the policy.
func TestRegisterRefusesBadOrigin(t *testing.T) {
	for _, o := range []string{"", "localhost:8080", "javascript:alert(1)", "https://"} {
		if err := docsui.Register(http.NewServeMux(), docsui.Page{SpecURL: "openapi.yaml", TryItOrigins: []string{o}}); err == nil {
			t.Errorf("origin %q accepted", o)
		}
	}
}
