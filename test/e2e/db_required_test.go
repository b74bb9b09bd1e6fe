package e2e

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/pgtest"
)

// needsDatabase are the commands and roles that must never create or
// migrate a database: only `serve` and `migrate up` may.
var needsDatabase = [][]string{
	{"poison", "list"},
	{"apikey", "create", "--name", "lab feed", "--scopes", "doctors:read"},
	{"apikey", "list"},
	{"publish", "--topic", "checkup-events", "--file", "event.json"},
	{"lag"},
	{"outbox", "status"},
	{"api"},
	{"worker"},
	{"cron"},
	{"consume", "user-created"},
}

// refused runs args and wants a non-zero exit with exactly one line on
// stderr containing want.
func refused(t *testing.T, dir string, env []string, want string, args ...string) {
	t.Helper()
	code, out, stderr := runRFDIn(t, dir, env, args...)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code == 0 || len(lines) != 1 || !strings.Contains(lines[0], want) {
		t.Fatalf("rfd %s: exit %d, stdout %q, stderr %q: want non-zero and one line containing %q",
			strings.Join(args, " "), code, out, stderr, want)
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s was created in %s", e.Name(), dir)
	}
}

// TestCommandsRefuseAMissingSQLiteFile: run from a directory with no
// database, the operator commands and the production roles exit non-zero
// with one line naming the URL they tried and create no file (today they
// created and migrated a fresh ./rfd.db and listed nothing, or issued keys
// no server knows); `migrate status` and `migrate down` too. After
// `rfd migrate up` the same commands work.
func TestCommandsRefuseAMissingSQLiteFile(t *testing.T) {
	t.Run("default URL", func(t *testing.T) {
		dir := t.TempDir()
		for _, args := range append(needsDatabase, []string{"migrate", "status"}, []string{"migrate", "down"}) {
			refused(t, dir, nil, "database sqlite://./rfd.db ("+filepath.Join(dir, "rfd.db")+") does not exist", args...)
		}
		assertEmptyDir(t, dir)
	})

	t.Run("explicit URL", func(t *testing.T) {
		dir, cwd := t.TempDir(), t.TempDir()
		url := "sqlite://" + filepath.Join(dir, "data", "rfd.db")
		env := []string{"RFD_DATABASE_URL=" + url}
		for _, args := range [][]string{{"poison", "list"}, {"apikey", "create", "--name", "x", "--scopes", "doctors:read"}} {
			refused(t, cwd, env, "database "+url, args...)
		}
		assertEmptyDir(t, dir)
		assertEmptyDir(t, cwd)

		if code, _, stderr := runRFDIn(t, cwd, env, "migrate", "up"); code != 0 {
			t.Fatalf("migrate up: exit %d: %s", code, stderr)
		}
		if code, out, stderr := runRFDIn(t, cwd, env, "poison", "list"); code != 0 || !strings.Contains(out, "0 message(s)") {
			t.Fatalf("poison list after migrate up: exit %d: %s%s", code, out, stderr)
		}
		if code, out, stderr := runRFDIn(t, cwd, env, "apikey", "create", "--name", "x", "--scopes", "doctors:read"); code != 0 || !strings.Contains(out, "rfdk_") {
			t.Fatalf("apikey create after migrate up: exit %d: %s%s", code, out, stderr)
		}
		assertEmptyDir(t, cwd)
	})
}

// TestCommandsRefuseAnUnmigratedPostgres: on a PostgreSQL database that
// exists but was never migrated the same commands exit non-zero with one
// line naming the URL, and leave the database as it was (no migrations
// table); a database that does not exist is refused naming its URL too.
// After `rfd migrate up` they work.
func TestCommandsRefuseAnUnmigratedPostgres(t *testing.T) {
	url := pgtest.NewDatabase(t)
	env := []string{"RFD_DATABASE_URL=" + url}
	dir := t.TempDir()
	for _, args := range needsDatabase {
		refused(t, dir, env, "database "+store.Redact(url)+" is not migrated", args...)
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables int
	if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("the refused commands created %d tables", tables)
	}

	missing := strings.Replace(url, "/rfd_test_", "/rfd_missing_", 1)
	refused(t, dir, []string{"RFD_DATABASE_URL=" + missing}, store.Redact(missing), "poison", "list")

	if code, _, stderr := runRFDIn(t, dir, env, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up: exit %d: %s", code, stderr)
	}
	if code, out, stderr := runRFDIn(t, dir, env, "poison", "list"); code != 0 || !strings.Contains(out, "0 message(s)") {
		t.Fatalf("poison list after migrate up: exit %d: %s%s", code, out, stderr)
	}
	if code, out, stderr := runRFDIn(t, dir, env, "apikey", "create", "--name", "x", "--scopes", "doctors:read"); code != 0 || !strings.Contains(out, "rfdk_") {
		t.Fatalf("apikey create after migrate up: exit %d: %s%s", code, out, stderr)
	}
}
