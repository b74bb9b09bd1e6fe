package e2e

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/rfdbin"
)

// poisonRow is one row of `rfd poison list`.
type poisonRow struct{ id, topic, class, state, attempts, reason string }

// poisonList runs `rfd poison list` with args and parses its table.
func poisonList(t *testing.T, dir string, env []string, args ...string) []poisonRow {
	t.Helper()
	code, out, stderr := runRFDIn(t, dir, env, append([]string{"poison", "list"}, args...)...)
	if code != 0 {
		t.Fatalf("poison list: exit %d: %s%s", code, out, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("poison list output: %q", out)
	}
	var rows []poisonRow
	reasonAt := strings.Index(lines[0], "REASON")
	for _, l := range lines[1 : len(lines)-1] {
		f := strings.Fields(l)
		if len(f) < 10 || reasonAt < 0 || len(l) < reasonAt {
			t.Fatalf("poison list row %q", l)
		}
		rows = append(rows, poisonRow{id: f[0], topic: f[1], class: f[3], state: f[4], attempts: f[6], reason: l[reasonAt:]})
	}
	return rows
}

// TestPublishShowsThePoisonQueueOnServe is the runbook's "Seeing the poison
// queue on rfd serve (SQLite)", process by process: `rfd serve` on a SQLite
// file; `rfd publish` of a truncated checkup event, which no ingestion path
// accepts, reaches the checkup consumer as a producer's message would; the
// consumer poisons it and `rfd poison list` shows it (permanent, not valid
// JSON), `show` hides the payload, `discard` drains it. Valid events
// published the same way are processed (the doctor, then the checkup and
// its notification), with the event id as the inbox key, and nothing more
// is poisoned. Every publish is audited with the OS user.
func TestPublishShowsThePoisonQueueOnServe(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "rfd.db")
	addr := freeAddr(t)
	env := []string{
		"RFD_DATABASE_URL=sqlite://" + dbPath,
		"RFD_HTTP_ADDR=" + addr,
		"RFD_SHUTDOWN_TIMEOUT=10s",
		"RFD_LOG_LEVEL=warn",
	}
	_, _, serveOut := startRole(t, dir, cleanEnv(env...), "serve")
	waitHTTP(t, "http://"+addr+"/readyz", 90*time.Second)

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"checkup_id": "CHK-1", "event_type": "result_available"`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runRFDIn(t, dir, env, "publish", "--topic", "checkup-events", "--file", "bad.json")
	if code != 0 || !strings.Contains(out, "published ") || !strings.Contains(out, "not validated") {
		t.Fatalf("publish bad.json: exit %d: %s%s", code, out, stderr)
	}

	var rows []poisonRow
	for deadline := time.Now().Add(60 * time.Second); ; {
		rows = poisonList(t, dir, env)
		if len(rows) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(rows) != 1 {
		t.Fatalf("poison list: %d rows, want the one poisoned message\n%s", len(rows), serveOut)
	}
	p := rows[0]
	if p.topic != "checkup-events" || p.class != "permanent" || p.state != "pending" || p.attempts != "1" || !strings.Contains(p.reason, "not valid JSON") {
		t.Fatalf("poisoned message %+v: want topic checkup-events, class permanent, pending, 1 attempt (not retried), reason not valid JSON", p)
	}

	code, out, stderr = runRFDIn(t, dir, env, "poison", "show", p.id)
	if code != 0 || !strings.Contains(out, "not JSON: hidden") || strings.Contains(out, "CHK-1") ||
		!strings.Contains(out, "ce_source: /rfd-notify/cli/"+osUser(t)) || !strings.Contains(out, "ce_type: rfd.checkup.v1") {
		t.Fatalf("poison show: exit %d: want the payload hidden and the CLI's CloudEvents metadata\n%s%s", code, out, stderr)
	}
	code, out, stderr = runRFDIn(t, dir, env, "poison", "discard", p.id, "--reason", "demo")
	if code != 0 || !strings.Contains(out, "discarded") {
		t.Fatalf("poison discard: exit %d: %s%s", code, out, stderr)
	}
	if rows := poisonList(t, dir, env, "--state", "pending"); len(rows) != 0 {
		t.Fatalf("pending after discard: %+v", rows)
	}

	// The contracts' examples: the referring doctor, then a result for them.
	root, err := rfdbin.Root()
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []struct{ topic, file, id string }{
		{"user-created", "user-created.example.json", "publish-e2e-user-1"},
		{"checkup-events", "checkup-event.example.json", "publish-e2e-checkup-1"},
	} {
		code, out, stderr = runRFDIn(t, dir, env, "publish", "--topic", ev.topic, "--id", ev.id,
			"--file", filepath.Join(root, "contracts", ev.file))
		if code != 0 || !strings.Contains(out, "published "+ev.id+" to "+ev.topic) {
			t.Fatalf("publish %s: exit %d: %s%s", ev.file, code, out, stderr)
		}
	}

	db, err := store.OpenExisting(context.Background(), "sqlite://"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(query string, args ...any) int {
		t.Helper()
		var n int
		if err := db.NewRaw(query, args...).Scan(context.Background(), &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(60 * time.Second); count(`SELECT count(*) FROM notifications n JOIN doctors d ON d.id = n.doctor_id
WHERE d.external_user_id = ? AND n.checkup_id = ?`, "um-usr-7f3a9c", "CHK-2026-0004512") == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the published checkup result never notified its doctor\n%s", serveOut)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := count(`SELECT count(*) FROM checkups WHERE id = ?`, "CHK-2026-0004512"); n != 1 {
		t.Fatalf("checkup rows = %d, want 1", n)
	}
	if n := count(`SELECT count(*) FROM inbox WHERE consumer = ? AND message_id = ?`, "checkup-events", "publish-e2e-checkup-1"); n != 1 {
		t.Fatalf("inbox rows for the event id = %d, want 1: --id is the consumers' deduplication key", n)
	}
	if rows := poisonList(t, dir, env, "--state", "pending"); len(rows) != 0 {
		t.Fatalf("valid events were poisoned: %+v", rows)
	}
	if n := count(`SELECT count(*) FROM audit_log WHERE action = 'event.publish' AND actor_type = 'operator' AND actor_id = ?`, osUser(t)); n != 3 {
		t.Fatalf("event.publish audit rows = %d, want 3", n)
	}
}

// osUser is the operator name the CLI audits and puts in ce_source.
func osUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil || u.Username == "" {
		t.Skip("no OS user name")
	}
	return u.Username
}

// TestPublishRefusesAnUnknownTopic: exit 2 (usage) naming the topics it
// takes, before any database is opened.
func TestPublishRefusesAnUnknownTopic(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runRFDIn(t, dir, nil, "publish", "--topic", "nope", "--file", "bad.json")
	if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("exit %d, stderr %q: want 2 and one line", code, stderr)
	}
	for _, topic := range []string{"checkup-events", "order-history-events", "send-notification", "user-created", "internal-login"} {
		if !strings.Contains(stderr, topic) {
			t.Errorf("stderr %q does not name %s", stderr, topic)
		}
	}
	assertEmptyDir(t, dir)
}
