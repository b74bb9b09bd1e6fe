package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/contracts"
	"github.com/rfd-notify/rfd/internal/cli"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/jobs/poison"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/roles"
	"github.com/rfd-notify/rfd/router"
)

// poisonInjector builds the poison command's manager the way wire does.
func poisonInjector(ctx context.Context, cfg config.Config) (*roles.PoisonManager, func(), error) {
	logger, err := roles.NewLogger(cfg)
	if err != nil {
		return nil, nil, err
	}
	db, cleanup, err := roles.OpenExistingDB(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	ps, err := roles.NewSQLPubSub(db, cfg, logger)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	ob := roles.NewOutbox(cfg, ps)
	m, err := roles.NewPoisonManager(ctx, cfg, db, roles.NewMigrator(db), ob, roles.NewPoison(db, ob))
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return m, cleanup, nil
}

func runPoison(t *testing.T, dbURL string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Execute(cli.Injectors{Poison: poisonInjector}, append(args, "--database-url", dbURL, "--log-level", "error"), &out, &errOut)
	t.Logf("$ rfd %s\n%s%s", strings.Join(args, " "), out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

// TestPoisonCommand walks an operator through every poison command on a
// message the drain stored: list, show (masked, then revealed and audited),
// replay (dry run, then for real: the original message id is back on its
// topic), discard, export.
func TestPoisonCommand(t *testing.T) {
	dbURL := migrated(t, "sqlite://"+filepath.Join(t.TempDir(), "rfd.db"))
	ctx := context.Background()
	if code, _, errOut := runPoison(t, dbURL, "poison", "list"); code != cli.ExitOK {
		t.Fatalf("list on an empty database: %s", errOut)
	}

	cfg, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL, cfg.LogLevel = dbURL, "error"
	m, cleanup, err := poisonInjector(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	payload, err := contracts.FS.ReadFile("checkup-event.example.json")
	if err != nil {
		t.Fatal(err)
	}
	store := func(id, reason, class string) {
		msg := message.NewMessage(id, payload)
		for k, v := range events.CloudEventMetadata(id, events.TypeCheckupEvent, "his", time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)) {
			msg.Metadata.Set(k, v)
		}
		msg.Metadata.Set(middleware.ReasonForPoisonedKey, reason)
		msg.Metadata.Set(middleware.PoisonedTopicKey, "checkup-events")
		msg.Metadata.Set(middleware.PoisonedHandlerKey, "checkup-events")
		msg.Metadata.Set(router.AttemptsKey, "1")
		msg.Metadata.Set(router.PoisonClassKey, class)
		db := dbOf(t, m)
		if err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return m.Store(ctx, tx, msg) }); err != nil {
			t.Fatal(err)
		}
	}
	store("evt-1", "permanent: checkup event: /result/tests/0/loinc: unknown field", poison.ClassPermanent)
	store("evt-2", "database is locked", poison.ClassExhausted)
	list, err := m.List(ctx, poison.Filter{})
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	first, second := list[0].ID, list[1].ID

	code, out, _ := runPoison(t, dbURL, "poison", "list", "--reason", "permanent", "--state", "pending", "--topic", "checkup-events", "--since", "1000000h")
	if code != cli.ExitOK || !strings.Contains(out, first) || strings.Contains(out, second) || !strings.Contains(out, "1 message(s)") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	if code, _, _ := runPoison(t, dbURL, "poison", "list", "--state", "nonsense"); code != cli.ExitUsage {
		t.Fatalf("bad state: exit %d", code)
	}

	code, out, _ = runPoison(t, dbURL, "poison", "show", first)
	if code != cli.ExitOK || strings.Contains(out, "Somchai") || !strings.Contains(out, `"patient": "***"`) || !strings.Contains(out, "CHK-2026-0004512") {
		t.Fatalf("show: %d\n%s", code, out)
	}
	code, out, _ = runPoison(t, dbURL, "poison", "show", first, "--reveal")
	if code != cli.ExitOK || !strings.Contains(out, "Somchai") {
		t.Fatalf("show --reveal: %d\n%s", code, out)
	}
	if n := count(t, m, "SELECT COUNT(*) FROM audit_log WHERE action = 'poison.reveal' AND object_id = ?", first); n != 1 {
		t.Fatalf("reveal audit rows = %d", n)
	}

	code, out, _ = runPoison(t, dbURL, "poison", "replay", "--all", "--topic", "checkup-events", "--dry-run")
	if code != cli.ExitOK || strings.Count(out, "would_replay") != 2 {
		t.Fatalf("replay --dry-run: %d\n%s", code, out)
	}
	if code, _, _ := runPoison(t, dbURL, "poison", "replay", "--all"); code != cli.ExitUsage {
		t.Fatalf("replay --all without --topic: exit %d", code)
	}
	code, out, _ = runPoison(t, dbURL, "poison", "replay", first, "--reason", "tolerant schema deployed")
	if code != cli.ExitOK || !strings.Contains(out, "replayed") {
		t.Fatalf("replay: %d\n%s", code, out)
	}
	if n := count(t, m, `SELECT COUNT(*) FROM "watermill_checkup-events" WHERE uuid = ?`, "evt-1"); n != 1 {
		t.Fatalf("replayed message on its topic: %d rows", n)
	}

	if code, _, _ := runPoison(t, dbURL, "poison", "discard", second); code != cli.ExitUsage {
		t.Fatalf("discard without --reason: exit %d", code)
	}
	code, out, _ = runPoison(t, dbURL, "poison", "discard", second, "--reason", "lock contention during the 02:00 backup; event re-sent by HIS")
	if code != cli.ExitOK || !strings.Contains(out, "discarded") {
		t.Fatalf("discard: %d\n%s", code, out)
	}
	if n := count(t, m, "SELECT COUNT(*) FROM audit_log WHERE action IN ('poison.replay', 'poison.discard')"); n != 2 {
		t.Fatalf("audit rows = %d", n)
	}

	file := filepath.Join(t.TempDir(), "poison.jsonl")
	code, out, _ = runPoison(t, dbURL, "poison", "export", "--to", file)
	if code != cli.ExitOK || !strings.Contains(out, "exported 2 message(s)") {
		t.Fatalf("export: %d\n%s", code, out)
	}
	body, err := os.ReadFile(file)
	if err != nil || strings.Count(string(body), "\n") != 2 || strings.Contains(string(body), "Somchai") {
		t.Fatalf("export file: %v\n%s", err, body)
	}
}

func dbOf(t *testing.T, m *roles.PoisonManager) *bun.DB {
	t.Helper()
	return m.DB()
}

func count(t *testing.T, m *roles.PoisonManager, query string, args ...any) int {
	t.Helper()
	var n int
	if err := m.DB().NewRaw(query, args...).Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}
