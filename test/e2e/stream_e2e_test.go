package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/rfdbin"
)

// e2eSecret makes HS256 doctor tokens acceptable to the subprocess.
const (
	e2eSecret = "stream-e2e-secret-of-at-least-32-bytes"
	e2eIssuer = "https://users.e2e.example/"
)

// runIn runs rfd in dir with env and fails the test on a non-zero exit.
func runIn(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(rfdBinary(t), args...)
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rfd %v: %v\n%s", args, err, out)
	}
}

// seedDoctor writes an active doctor into the migrated SQLite file.
func seedDoctor(t *testing.T, path, ext string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC()
	d := domain.Doctor{ID: "doc-" + ext, ExternalUserID: ext, Name: "Dr. " + ext, Locale: "en", TimeZone: "UTC",
		Active: true, ProfileVersion: now, CreatedAt: now, UpdatedAt: now}
	if _, err := db.NewInsert().Model(&d).Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

func hs256Token(t *testing.T, sub string) string {
	t.Helper()
	now := time.Now()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": e2eIssuer, "aud": "rfd-notify", "sub": sub,
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}).SignedString([]byte(e2eSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startRole starts rfd with args and returns a channel that receives its
// exit error; the process is killed at the end of the test if still running.
func startRole(t *testing.T, dir string, env []string, args ...string) (*exec.Cmd, <-chan error, *bytes.Buffer) {
	t.Helper()
	return rfdbin.Start(t, rfdBinary(t), dir, env, args...)
}

// TestServeSIGTERMEndsStreams: SIGTERM to `rfd serve` with a doctor's
// notification stream open ends the stream at once (a final comment, then
// a clean end of the response) and exits 0 well within the shutdown
// timeout, instead of waiting it out and exiting 1.
func TestServeSIGTERMEndsStreams(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "rfd.db")
	addr := freeAddr(t)
	env := cleanEnv(
		"RFD_DATABASE_URL=sqlite://"+dbPath,
		"RFD_HTTP_ADDR="+addr,
		"RFD_SHUTDOWN_TIMEOUT=20s",
		"RFD_JWT_HS256_SECRET="+e2eSecret,
		"RFD_JWT_ISSUER="+e2eIssuer,
		"RFD_LOG_LEVEL=warn",
	)
	runIn(t, dir, env, "migrate", "up")
	seedDoctor(t, dbPath, "um-stream-e2e")
	cmd, exited, out := startRole(t, dir, env, "serve")
	waitHTTP(t, "http://"+addr+"/readyz", 60*time.Second)

	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/notifications/stream", nil)
	req.Header.Set("Authorization", "Bearer "+hs256Token(t, "um-stream-e2e"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	type end struct {
		last string
		err  error
	}
	ended := make(chan end, 1)
	go func() {
		r := bufio.NewReader(resp.Body)
		var last string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				ended <- end{last, err}
				return
			}
			if line = strings.TrimSpace(line); line != "" {
				last = line
			}
		}
	}()

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v %s after SIGTERM, want 0\n%s", err, time.Since(start), out)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("serve still running 5s after SIGTERM with a stream open\n%s", out)
	}
	select {
	case e := <-ended:
		if !errors.Is(e.err, io.EOF) || !strings.Contains(e.last, "shutting down") {
			t.Fatalf("stream ended with %v after %q, want a clean end after the shutdown comment", e.err, e.last)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end")
	}
}

// TestAPIRoleMetricsOnAdminOnly: `rfd api` serves /metrics on the admin
// listener only; its public port answers 404 there (health stays on both,
// for the probes).
func TestAPIRoleMetricsOnAdminOnly(t *testing.T) {
	dir := t.TempDir()
	pub, admin := freeAddr(t), freeAddr(t)
	env := cleanEnv(
		"RFD_DATABASE_URL=sqlite://"+filepath.Join(dir, "rfd.db"),
		"RFD_HTTP_ADDR="+pub,
		"RFD_ADMIN_ADDR="+admin,
		"RFD_SHUTDOWN_TIMEOUT=10s",
		"RFD_LOG_LEVEL=warn",
	)
	runIn(t, dir, env, "migrate", "up")
	cmd, exited, out := startRole(t, dir, env, "api")
	waitHTTP(t, "http://"+admin+"/readyz", 60*time.Second)

	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", u, err, out)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("http://" + pub + "/healthz"); code != http.StatusOK {
		t.Fatalf("public /healthz = %d", code)
	}
	if code, _ := get("http://" + pub + "/metrics"); code != http.StatusNotFound {
		t.Fatalf("public /metrics = %d, want 404", code)
	}
	code, body := get("http://" + admin + "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "rfd_http_request_duration_seconds") {
		t.Fatalf("admin /metrics = %d, want 200 with the API's response times", code)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("api exited with %v after SIGTERM\n%s", err, out)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("api did not exit after SIGTERM\n%s", out)
	}
}
