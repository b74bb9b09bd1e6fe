package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/testkit/rfdbin"
)

// rfdBinary builds the rfd binary once per test run, as the Dockerfile does.
func rfdBinary(t *testing.T) string {
	t.Helper()
	return rfdbin.Build(t)
}

func freeAddr(t *testing.T) string { return rfdbin.FreeAddr(t) }

// cleanEnv is the environment without any RFD_ setting of the caller.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RFD_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// TestServeSubprocess runs `rfd serve` on a temp SQLite file: /healthz and
// /readyz answer 200, and SIGTERM exits 0.
func TestServeSubprocess(t *testing.T) {
	bin := rfdBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	cmd.Env = cleanEnv(
		"RFD_DATABASE_URL=sqlite://"+filepath.Join(dir, "rfd.db"),
		"RFD_HTTP_ADDR="+addr,
		"RFD_SHUTDOWN_TIMEOUT=10s",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	client := &http.Client{Timeout: 2 * time.Second}
	get := func(path string) (int, string) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		return resp.StatusCode, body.String()
	}

	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _ := get("/healthz")
		if code == http.StatusOK {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("serve exited early: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never answered 200\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Ready follows live once the router has started: poll for it.
	code, body := get("/readyz")
	for ready := time.Now().Add(30 * time.Second); code != http.StatusOK && time.Now().Before(ready); {
		time.Sleep(100 * time.Millisecond)
		code, body = get("/readyz")
	}
	if code != http.StatusOK {
		t.Fatalf("/readyz = %d %s, want 200", code, body)
	}
	var ready struct {
		Status string   `json:"status"`
		Checks []string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil || ready.Status != "ready" {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics = %d, want 200 with Go metrics", code)
	} else if !strings.Contains(body, "\nrfd_pending_notifications_overdue 0\n") {
		t.Fatal("/metrics has no rfd_pending_notifications_overdue: serve runs the sweep and exports what waits")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM, want 0\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not exit within 20s of SIGTERM\n%s", stderr.String())
	}
	// Logs are JSON lines.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %q", line)
		}
	}
}

func runRFD(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	return runRFDIn(t, t.TempDir(), env, args...)
}

// runRFDIn runs rfd with dir as its working directory.
func runRFDIn(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	// Build first: the first build of a run can take longer than the
	// command's own time limit.
	bin := rfdBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	default:
		t.Fatalf("run rfd: %v", err)
		return -1, "", ""
	}
}

// TestConfigErrors: an invalid value exits non-zero with one line naming
// the variable.
func TestConfigErrors(t *testing.T) {
	cases := []struct {
		env  string
		want string
	}{
		{"RFD_TRANSPORT=carrier-pigeon", "RFD_TRANSPORT"},
		{"RFD_RETRY_MAX_ATTEMPTS=lots", "RFD_RETRY_MAX_ATTEMPTS"},
		{"RFD_SHUTDOWN_TIMEOUT=soon", "RFD_SHUTDOWN_TIMEOUT"},
		{"RFD_DATABASE_URL=mysql://x", "RFD_DATABASE_URL"},
		{"RFD_LOG_LEVEL=loud", "RFD_LOG_LEVEL"},
		{"RFD_THROTTLE=nobody=5", "RFD_THROTTLE"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			code, _, stderr := runRFD(t, []string{c.env}, "serve")
			if code == 0 {
				t.Fatalf("exit 0 for %s", c.env)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], c.want) {
				t.Fatalf("stderr %q: want one line naming %s", stderr, c.want)
			}
		})
	}
	t.Run("flag", func(t *testing.T) {
		code, _, stderr := runRFD(t, nil, "serve", "--transport", "smoke-signals")
		if code == 0 || !strings.Contains(stderr, "RFD_TRANSPORT") {
			t.Fatalf("exit %d, stderr %q: want non-zero naming RFD_TRANSPORT", code, stderr)
		}
	})
}

// TestUnknownConsumer: exit 2 listing the valid consumers.
func TestUnknownConsumer(t *testing.T) {
	code, _, stderr := runRFD(t, nil, "consume", "lab-results")
	if code != 2 {
		t.Fatalf("exit %d, want 2 (stderr %q)", code, stderr)
	}
	for _, name := range []string{"checkup-events", "order-history-events", "send-notification", "user-created", "internal-login"} {
		if !strings.Contains(stderr, name) {
			t.Errorf("stderr %q does not list %s", stderr, name)
		}
	}
}

// TestMigrateCommand applies, lists and rolls back migrations on SQLite.
func TestMigrateCommand(t *testing.T) {
	db := "RFD_DATABASE_URL=sqlite://" + filepath.Join(t.TempDir(), "m.db")
	code, out, stderr := runRFD(t, []string{db}, "migrate", "up")
	if code != 0 || !strings.Contains(out, "applied") {
		t.Fatalf("migrate up: exit %d, out %q, err %q", code, out, stderr)
	}
	code, out, _ = runRFD(t, []string{db}, "migrate", "status")
	if code != 0 || strings.Contains(out, "pending") || !strings.Contains(out, "applied") {
		t.Fatalf("migrate status after up: exit %d, out %q", code, out)
	}
	code, out, _ = runRFD(t, []string{db}, "migrate", "down")
	if code != 0 || !strings.Contains(out, "rolled back") {
		t.Fatalf("migrate down: exit %d, out %q", code, out)
	}
	code, out, _ = runRFD(t, []string{db}, "migrate", "status")
	if code != 0 || !strings.Contains(out, "pending") {
		t.Fatalf("migrate status after down: exit %d, out %q", code, out)
	}
}

// TestOpenAPICommand prints an OpenAPI 3.1 document.
func TestOpenAPICommand(t *testing.T) {
	code, out, stderr := runRFD(t, nil, "openapi", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi output: %v %q", err, doc.OpenAPI)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	rfdbin.Cleanup()
	os.Exit(code)
}
