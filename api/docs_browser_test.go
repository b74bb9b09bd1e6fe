package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/health"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// TestDocsPageInChromium loads /docs of a running server in headless
// Chromium that can resolve no host but the server's, as on a machine
// without network: the page renders from the binary's own assets under its
// Content-Security-Policy (Chromium reports no violation), lists the
// operations, and its "Try it" sends the request to the spec's server,
// which a server with no RFD_PUBLIC_URL derives from its listen address.
func TestDocsPageInChromium(t *testing.T) {
	chromium := chromiumPath(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := testenv.New(t, testenv.SQLiteSQL, func(c *config.Config) {
		c.PublicURL = ""
		c.HTTPAddr = ln.Addr().String()
	})
	srv, err := api.NewServer(withServices(t, api.Deps{Config: env.Config, DB: env.DB, Logger: env.Logger}), &health.Checks{}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var tried []string
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			mu.Lock()
			tried = append(tried, r.Method+" "+r.URL.Path)
			mu.Unlock()
		}
		srv.Handler().ServeHTTP(w, r)
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	base := "http://" + ln.Addr().String()

	b := startChromium(t, chromium, base+"/docs#/operations/listNotifications")

	// The operation list: the sidebar, with the group of the operation
	// shown expanded, and the operation's page.
	b.waitFor(t, `document.querySelector("h1")?.textContent === "List the doctor's notifications" &&
		[...document.querySelectorAll("[title]")].some(e => e.title === "Acknowledge a critical result")`)
	if got := b.eval(t, `document.body.innerText.includes("`+base+`/v1/notifications")`); got != true {
		t.Errorf("the operation's URL is not %s/v1/notifications", base)
	}

	// "Try it": the request reaches this server, and its answer (401: the
	// example token is no token) is on the page.
	b.eval(t, `[...document.querySelectorAll("button")].find(e => e.textContent.trim() === "Send API Request").click(), true`)
	b.waitFor(t, `document.body.innerText.includes("401 Unauthorized")`)
	mu.Lock()
	if len(tried) != 1 || tried[0] != "GET /v1/notifications" {
		t.Errorf("requests of Try it: %q, want [GET /v1/notifications]", tried)
	}
	mu.Unlock()

	b.close(t)
	if log := b.console(); strings.Contains(log, "Content Security Policy") || strings.Contains(log, "net::ERR_") {
		t.Errorf("Chromium reported a blocked load:\n%s", log)
	}
}

// chromiumPath is Debian's chromium; without it the test is skipped, except
// in CI (.ci/run installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
	return ""
}

// browser is headless Chromium driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: commands on fd 3, answers on fd 4, each JSON
// message ended by a NUL byte), attached to its one page.
type browser struct {
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	send    *os.File
	session string

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan cdpMessage
	done    chan struct{}
}

type cdpMessage struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func startChromium(t *testing.T, chromium, url string) *browser {
	t.Helper()
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{stderr: &lockedBuffer{}, send: cmdW, waiting: map[int]chan cdpMessage{}, done: make(chan struct{})}
	b.cmd = exec.Command(chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--window-size=1280,900",
		// No network: every host but the server's fails to resolve.
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		// Console messages, CSP violations among them, go to stderr.
		"--enable-logging=stderr", "--v=0",
		"--remote-debugging-pipe", url)
	b.cmd.Stderr = b.stderr
	b.cmd.ExtraFiles = []*os.File{cmdR, outW}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmdR.Close()
	outW.Close()
	t.Cleanup(func() { b.close(t) })
	go b.read(outR)

	var targets struct {
		TargetInfos []struct {
			TargetID string `json:"targetId"`
			Type     string `json:"type"`
		} `json:"targetInfos"`
	}
	deadline := time.Now().Add(30 * time.Second)
	page := ""
	for page == "" {
		b.call(t, "", "Target.getTargets", nil, &targets)
		for _, ti := range targets.TargetInfos {
			if ti.Type == "page" {
				page = ti.TargetID
			}
		}
		if page == "" {
			if time.Now().After(deadline) {
				t.Fatal("chromium opened no page")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.call(t, "", "Target.attachToTarget", map[string]any{"targetId": page, "flatten": true}, &attached)
	b.session = attached.SessionID
	return b
}

func (b *browser) read(r *os.File) {
	defer close(b.done)
	br := bufio.NewReader(r)
	for {
		raw, err := br.ReadBytes(0)
		if err != nil {
			return
		}
		var m cdpMessage
		if json.Unmarshal(bytes.TrimSuffix(raw, []byte{0}), &m) != nil || m.ID == 0 {
			continue // an event
		}
		b.mu.Lock()
		ch := b.waiting[m.ID]
		delete(b.waiting, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

// call sends a command (to the browser when session is "", else to the
// page) and decodes its result into out.
func (b *browser) call(t *testing.T, session, method string, params any, out any) {
	t.Helper()
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.send.Write(append(raw, 0)); err != nil {
		t.Fatalf("%s: %v\n%s", method, err, b.console())
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			t.Fatalf("%s: %s", method, m.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(m.Result, out); err != nil {
				t.Fatalf("%s: %v", method, err)
			}
		}
	case <-b.done:
		t.Fatalf("%s: chromium exited:\n%s", method, b.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no answer in 60s", method)
	}
}

// eval evaluates a JavaScript expression on the page and returns its value.
func (b *browser) eval(t *testing.T, expr string) any {
	t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	b.call(t, b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if e := res.ExceptionDetails; e != nil {
		t.Fatalf("%s: %s %s", expr, e.Text, e.Exception.Description)
	}
	return res.Result.Value
}

// waitFor polls cond on the page until it is true, for up to a minute.
func (b *browser) waitFor(t *testing.T, cond string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if b.eval(t, "!!("+cond+")") == true {
			return
		}
		select {
		case <-ctx.Done():
			text, _ := b.eval(t, `document.body ? document.body.innerText.slice(0, 2000) : ""`).(string)
			t.Fatalf("page never showed %s; it shows:\n%s\nchromium's console:\n%s", cond, text, b.console())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// console is what Chromium logged of the page: console messages, which
// include CSP violations, and failed loads; not its own complaints about
// D-Bus and GPUs.
func (b *browser) console() string {
	var out []string
	for _, line := range strings.Split(b.stderr.String(), "\n") {
		if strings.Contains(line, ":CONSOLE") || strings.Contains(line, "Content Security Policy") || strings.Contains(line, "net::ERR_") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// lockedBuffer is Chromium's stderr, read while Chromium writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// close ends Chromium (once) and waits for it.
func (b *browser) close(t *testing.T) {
	t.Helper()
	if b.cmd.ProcessState != nil {
		return
	}
	_ = b.send.Close() // Chromium exits when its command pipe closes
	exited := make(chan error, 1)
	go func() { exited <- b.cmd.Wait() }()
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Errorf("chromium: %v", err)
		}
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-exited
		t.Logf("chromium did not exit on its pipe's close; killed (pid %d)", b.cmd.Process.Pid)
	}
}
