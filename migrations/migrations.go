// Package migrations holds the schema of both dialects as bun migrations.
// Migrations are append-only: a released migration is never edited, a
// change is a new file. Each file registers one migration named by its
// timestamp prefix and carries the SQL of PostgreSQL and of SQLite.
package migrations

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"
)

// Migrations is every migration of the service, registered by the files of
// this package.
var Migrations = migrate.NewMigrations()

// dialectSQL is one migration step written for each dialect.
type dialectSQL struct {
	pg, sqlite []string
}

// steps runs the statements of the database's dialect in one transaction.
// Each migration file registers itself with
// Migrations.MustRegister(steps(up), steps(down)): bun names the migration
// after the calling file.
func steps(stmts dialectSQL) migrate.MigrationFunc {
	return func(ctx context.Context, db *bun.DB) error {
		list := stmts.pg
		if db.Dialect().Name().String() == "sqlite" {
			list = stmts.sqlite
		}
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			for _, s := range list {
				if _, err := tx.ExecContext(ctx, s); err != nil {
					return fmt.Errorf("%s: %w", firstLine(s), err)
				}
			}
			return nil
		})
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}

// Migrator runs the migrations with bun/migrate's lock, so two replicas
// starting at once do not both apply the same migration.
type Migrator struct {
	db *bun.DB
	m  *migrate.Migrator
}

// migrationsTable is bun's table of applied migrations (its default name).
const migrationsTable = "bun_migrations"

// NewMigrator returns a migrator over db.
func NewMigrator(db *bun.DB) *Migrator {
	return &Migrator{db: db, m: migrate.NewMigrator(db, Migrations, migrate.WithMarkAppliedOnSuccess(true))}
}

// initialized reports whether the migrations table exists. Status and
// Pending look before they read, so that asking about a database never
// writes to it: a command refusing an unmigrated database leaves it as it
// was.
func (m *Migrator) initialized(ctx context.Context) (bool, error) {
	var n int
	query := "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
	if m.db.Dialect().Name() == dialect.SQLite {
		query = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	}
	if err := m.db.QueryRowContext(ctx, query, migrationsTable).Scan(&n); err != nil {
		return false, fmt.Errorf("look for the migrations table: %w", err)
	}
	return n > 0, nil
}

// Up applies every pending migration and returns their names.
func (m *Migrator) Up(ctx context.Context) ([]string, error) {
	if err := m.m.Init(ctx); err != nil {
		return nil, fmt.Errorf("init migrations tables: %w", err)
	}
	if err := m.m.Lock(ctx); err != nil {
		return nil, fmt.Errorf("lock migrations: %w", err)
	}
	defer func() { _ = m.m.Unlock(context.WithoutCancel(ctx)) }()

	group, err := m.m.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate up: %w", err)
	}
	return names(group.Migrations), nil
}

// Down rolls back the last applied group and returns the names rolled back.
func (m *Migrator) Down(ctx context.Context) ([]string, error) {
	if err := m.m.Init(ctx); err != nil {
		return nil, fmt.Errorf("init migrations tables: %w", err)
	}
	if err := m.m.Lock(ctx); err != nil {
		return nil, fmt.Errorf("lock migrations: %w", err)
	}
	defer func() { _ = m.m.Unlock(context.WithoutCancel(ctx)) }()

	group, err := m.m.Rollback(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate down: %w", err)
	}
	return names(group.Migrations), nil
}

// Status is one migration and whether it is applied.
type Status struct {
	Name    string
	Applied bool
	GroupID int64
}

// Status lists every migration with its state. On a database never
// migrated every migration is pending.
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	ok, err := m.initialized(ctx)
	if err != nil {
		return nil, err
	}
	ms := Migrations.Sorted()
	if ok {
		if ms, err = m.m.MigrationsWithStatus(ctx); err != nil {
			return nil, fmt.Errorf("migration status: %w", err)
		}
	}
	out := make([]Status, 0, len(ms))
	for _, mig := range ms {
		out = append(out, Status{Name: mig.Name + "_" + mig.Comment, Applied: mig.IsApplied(), GroupID: mig.GroupID})
	}
	return out, nil
}

// Count is how many migrations this build knows.
func Count() int { return len(Migrations.Sorted()) }

// Pending reports how many migrations are not applied yet.
func (m *Migrator) Pending(ctx context.Context) (int, error) {
	st, err := m.Status(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range st {
		if !s.Applied {
			n++
		}
	}
	return n, nil
}

func names(ms migrate.MigrationSlice) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Name+"_"+m.Comment)
	}
	return out
}
