// Package docsui serves the API reference page: Stoplight Elements, whose
// files are embedded in the binary, so the page renders on a machine without
// network access and loads nothing from a third party.
//
// The files in assets/ are the npm package pinned in elements.pin, copied by
// scripts/update-docs-assets, which checks the package against the pinned
// integrity; `scripts/update-docs-assets --check` (CI) proves the checked-in
// files are still that package's. The page loads them with Subresource
// Integrity hashes computed here from the embedded bytes, under a
// Content-Security-Policy that allows scripts and styles from the server
// only.
package docsui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"embed"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Path is where the page is served; its assets are under Path + "/assets/".
const Path = "/docs"

//go:embed assets/web-components.min.js assets/styles.min.css
var files embed.FS

// The pin is "@stoplight/elements VERSION sha512-…", written by
// scripts/update-docs-assets.
//
//go:embed elements.pin
var pin string

// Version is the pinned version of Stoplight Elements.
var Version = pinnedVersion()

func pinnedVersion() string {
	f := strings.Fields(pin)
	if len(f) != 3 || f[0] != "@stoplight/elements" {
		panic(fmt.Sprintf("docsui: elements.pin is %q, want \"@stoplight/elements VERSION sha512-...\"", pin))
	}
	return f[1]
}

// asset is one embedded file as the page references it.
type asset struct {
	name        string
	contentType string
	body        []byte
	// integrity is the Subresource Integrity value of body.
	integrity string

	gzipOnce sync.Once
	gzipped  []byte
}

func loadAsset(name, contentType string) *asset {
	body, err := files.ReadFile("assets/" + name)
	if err != nil {
		panic(fmt.Sprintf("docsui: %v", err))
	}
	sri := sha512.Sum384(body)
	return &asset{
		name:        name,
		contentType: contentType,
		body:        body,
		integrity:   "sha384-" + base64.StdEncoding.EncodeToString(sri[:]),
	}
}

// url is the asset's path relative to the page. Relative, so the page works
// behind a proxy that mounts the API under a path prefix; versioned, so the
// long cache lifetime ends with an upgrade.
func (a *asset) url() string {
	return strings.TrimPrefix(Path, "/") + "/assets/" + Version + "/" + a.name
}

// gzip compresses the asset once, on first use: the script is 2 MB and
// under a third of that gzipped.
func (a *asset) gzip() []byte {
	a.gzipOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(a.body)
		_ = zw.Close()
		a.gzipped = buf.Bytes()
	})
	return a.gzipped
}

func (a *asset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Vary", "Accept-Encoding")
	body := a.body
	if acceptsGzip(r) {
		body = a.gzip()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

var (
	script = loadAsset("web-components.min.js", "text/javascript; charset=utf-8")
	styles = loadAsset("styles.min.css", "text/css; charset=utf-8")
)

// Page is what the docs page shows.
type Page struct {
	// Title is the page's title.
	Title string
	// SpecURL is the OpenAPI document Elements renders, relative to the
	// page (e.g. "openapi.yaml") or absolute on the same server.
	SpecURL string
	// TryItOrigins are origins besides the page's own that "Try it" may
	// call: the origins of the spec's servers.
	TryItOrigins []string
}

// page renders the HTML of p. Every value is escaped with html.EscapeString,
// which leaves the base64 of the integrity hashes as it is.
func page(p Page) []byte {
	e := html.EscapeString
	return []byte(`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="referrer" content="no-referrer">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>` + e(p.Title) + `</title>
    <link rel="stylesheet" href="` + e(styles.url()) + `" integrity="` + e(styles.integrity) + `">
    <script src="` + e(script.url()) + `" integrity="` + e(script.integrity) + `"></script>
  </head>
  <body>
    <elements-api
      apiDescriptionUrl="` + e(p.SpecURL) + `"
      router="hash"
      layout="sidebar"
      tryItCredentialsPolicy="same-origin"
    ></elements-api>
  </body>
</html>
`)
}

// Register serves the page at GET Path and its assets under Path/assets/
// on mux.
func Register(mux *http.ServeMux, p Page) error {
	csp, err := contentSecurityPolicy(p.TryItOrigins)
	if err != nil {
		return err
	}
	body := page(p)
	mux.HandleFunc("GET "+Path, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(body)
	})
	for _, a := range []*asset{script, styles} {
		mux.Handle("GET /"+a.url(), a)
	}
	return nil
}

// contentSecurityPolicy allows the page's own script and stylesheet and
// nothing from elsewhere: no images, fonts, frames or forms. Elements
// injects style elements at run time, whose content varies with the
// operation shown (its icons' CSS, its code editor's), so styles need
// 'unsafe-inline' (a hash per style element does not hold); scripts do not.
// Requests go to the server itself (the spec) and to the spec's servers
// ("Try it").
func contentSecurityPolicy(tryItOrigins []string) (string, error) {
	connect := []string{"'self'"}
	for _, o := range tryItOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("docs page: try-it origin %q is not an absolute http(s) URL", o)
		}
		connect = append(connect, u.Scheme+"://"+u.Host)
	}
	return strings.Join([]string{
		"default-src 'none'",
		"base-uri 'none'",
		"connect-src " + strings.Join(connect, " "),
		"form-action 'none'",
		"frame-ancestors 'none'",
		"script-src 'self'",
		"style-src 'self' 'unsafe-inline'",
		"sandbox allow-same-origin allow-scripts allow-popups allow-popups-to-escape-sandbox allow-downloads",
	}, "; "), nil
}
