package cli_test

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/cli"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/roles"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/pgtest"
)

// apiKeysInjector builds the apikey command's manager the way wire does.
func apiKeysInjector(ctx context.Context, cfg config.Config) (*roles.APIKeyManager, func(), error) {
	db, cleanup, err := roles.OpenExistingDB(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	m, err := roles.NewAPIKeyManager(ctx, cfg, db, roles.NewMigrator(db))
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return m, cleanup, nil
}

// migrated creates and migrates the database of dbURL, as `rfd migrate up`
// does: the operator commands refuse any other.
func migrated(t *testing.T, dbURL string) string {
	t.Helper()
	db, err := store.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := roles.NewMigrator(db).Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dbURL
}

func run(t *testing.T, dbURL string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Execute(cli.Injectors{APIKeys: apiKeysInjector}, append(args, "--database-url", dbURL), &out, &errOut)
	return code, out.String(), errOut.String()
}

var keyLine = regexp.MustCompile(`(?m)^key:\s+(rfdk_\S+)$`)
var idLine = regexp.MustCompile(`(?m)^id:\s+(\S+)$`)

// TestAPIKeyCommand: create prints the key once, the key authenticates with
// its scopes, list never shows it, revoke refuses it from then on.
func TestAPIKeyCommand(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return migrated(t, "sqlite://"+filepath.Join(t.TempDir(), "rfd.db")) },
		"postgres": func(t *testing.T) string { return migrated(t, pgtest.NewDatabase(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dbURL := url(t)
			code, out, errOut := run(t, dbURL, "apikey", "create", "--name", "lab feed", "--scopes", "events:checkup,doctors:read", "--expires", "720h")
			if code != cli.ExitOK {
				t.Fatalf("create: exit %d: %s", code, errOut)
			}
			km, im := keyLine.FindStringSubmatch(out), idLine.FindStringSubmatch(out)
			if km == nil || im == nil || !strings.Contains(out, "scopes:  events:checkup,doctors:read") {
				t.Fatalf("create printed:\n%s", out)
			}
			secret, id := km[1], im[1]

			ctx := context.Background()
			db, err := store.Open(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			keys := auth.NewAPIKeys(store.NewQueries(db), time.Now)
			k, err := keys.Verify(ctx, secret)
			if err != nil {
				t.Fatalf("the printed key does not verify: %v", err)
			}
			if k.ID != id || k.Name != "lab feed" || !k.HasScope(auth.ScopeEventsCheckup) || !k.HasScope(auth.ScopeDoctorsRead) || k.HasScope(auth.ScopeNotificationsWrite) {
				t.Fatalf("key = %+v", k)
			}
			if k.ExpiresAt == nil || time.Until(*k.ExpiresAt) < 719*time.Hour {
				t.Fatalf("expires %v", k.ExpiresAt)
			}

			code, out, errOut = run(t, dbURL, "apikey", "list")
			if code != cli.ExitOK || !strings.Contains(out, id) || !strings.Contains(out, "active") || strings.Contains(out, secret) {
				t.Fatalf("list: exit %d: %s%s", code, out, errOut)
			}

			code, out, errOut = run(t, dbURL, "apikey", "revoke", id)
			if code != cli.ExitOK || !strings.Contains(out, "revoked "+id) {
				t.Fatalf("revoke: exit %d: %s%s", code, out, errOut)
			}
			if _, err := keys.Verify(ctx, secret); auth.Status(err) != 401 {
				t.Fatalf("a revoked key verifies: %v", err)
			}
			code, out, _ = run(t, dbURL, "apikey", "list")
			if code != cli.ExitOK || !strings.Contains(out, "revoked") {
				t.Fatalf("list after revoke: %s", out)
			}
			if code, _, _ = run(t, dbURL, "apikey", "revoke", id); code != cli.ExitError {
				t.Errorf("revoking twice: exit %d", code)
			}

			// Usage errors.
			if code, _, _ = run(t, dbURL, "apikey", "create", "--scopes", "events:checkup"); code != cli.ExitUsage {
				t.Errorf("create without a name: exit %d", code)
			}
			if code, _, errOut = run(t, dbURL, "apikey", "create", "--name", "x", "--scopes", "everything"); code != cli.ExitError || !strings.Contains(errOut, "unknown scope") {
				t.Errorf("unknown scope: exit %d: %s", code, errOut)
			}
			// The retired scope that granted every event type is not issued.
			if code, _, errOut = run(t, dbURL, "apikey", "create", "--name", "x", "--scopes", "events:write"); code != cli.ExitError || !strings.Contains(errOut, "retired") {
				t.Errorf("events:write: exit %d: %s", code, errOut)
			}
			if code, _, _ = run(t, dbURL, "apikey", "revoke"); code != cli.ExitUsage {
				t.Errorf("revoke without id: exit %d", code)
			}
		})
	}
}
