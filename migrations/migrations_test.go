package migrations_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/pgtest"
	"github.com/rfd-notify/rfd/migrations"
)

// Every migration applies and rolls back on both dialects, and applies
// again after the rollback.
func TestUpDownUp(t *testing.T) {
	urls := map[string]string{
		"sqlite":   "sqlite://" + filepath.Join(t.TempDir(), "m.db"),
		"postgres": pgtest.NewDatabase(t),
	}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db, err := store.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			m := migrations.NewMigrator(db)
			applied, err := m.Up(ctx)
			if err != nil {
				t.Fatalf("up: %v", err)
			}
			if len(applied) == 0 {
				t.Fatal("no migration applied")
			}
			if n, err := m.Pending(ctx); err != nil || n != 0 {
				t.Fatalf("pending after up = %d, %v", n, err)
			}
			rolled, err := m.Down(ctx)
			if err != nil {
				t.Fatalf("down: %v", err)
			}
			if len(rolled) != len(applied) {
				t.Fatalf("rolled back %d of %d", len(rolled), len(applied))
			}
			var tables int
			q := `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('doctors', 'notifications', 'inbox')`
			if name == "sqlite" {
				q = `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('doctors', 'notifications', 'inbox')`
			}
			if err := db.QueryRowContext(ctx, q).Scan(&tables); err != nil || tables != 0 {
				t.Fatalf("tables left after down = %d, %v", tables, err)
			}
			if again, err := m.Up(ctx); err != nil || len(again) != len(applied) {
				t.Fatalf("up again: %d, %v", len(again), err)
			}
		})
	}
}
