package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/store/storetest"
	"github.com/rfd-notify/rfd/internal/testkit/pgtest"
	"github.com/rfd-notify/rfd/migrations"
)

// TestExecutor runs the data layer's shared suite on every backend.
func TestExecutor(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		storetest.Exercise(t, func(t *testing.T) *bun.DB {
			return openMigrated(t, "sqlite://"+filepath.Join(t.TempDir(), "rfd.db"))
		})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		storetest.Exercise(t, func(t *testing.T) *bun.DB {
			return openMigrated(t, pgtest.NewDatabase(t))
		})
	})
}

func openMigrated(t *testing.T, url string) *bun.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := migrations.NewMigrator(db).Up(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}
