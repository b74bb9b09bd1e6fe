package store_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/testenv"
	"github.com/rfd-notify/rfd/store"
)

type thing struct {
	bun.BaseModel `bun:"table:things"`

	ID    string    `bun:"id,pk"`
	Note  string    `bun:"note"`
	At    time.Time `bun:"at"`
	Count int       `bun:"count"`
}

// The batch, Select and the prepared-statement helpers, on SQLite and
// PostgreSQL alike: what a transaction writes through a batch is there
// after Flush, values with quotes and placeholders survive formatting, a
// failing statement fails the flush, and Select scans as bun does.
func TestBatchAndSelect(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresSQL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, name)
			ctx := context.Background()
			if _, err := env.DB.NewCreateTable().Model((*thing)(nil)).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 11, 25, 8, 30, 0, 123000000, time.UTC)
			err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				b := store.NewBatch(tx)
				if err := b.Exec(ctx, "INSERT INTO things (id, note, at, count) VALUES (?, ?, ?, ?)", "a", "it's ? a 'quote'; DROP TABLE things", at, 1); err != nil {
					return err
				}
				if err := b.Add(ctx, tx.NewInsert().Model(&[]thing{{ID: "b", Note: "two", At: at, Count: 2}, {ID: "c", Note: "three", At: at, Count: 3}})); err != nil {
					return err
				}
				if err := b.Exec(ctx, "UPDATE things SET count = count + 10 WHERE id = ?", "c"); err != nil {
					return err
				}
				return b.Flush(ctx)
			})
			if err != nil {
				t.Fatal(err)
			}

			if name == testenv.PostgresSQL {
				// Prepared statements are planned for their arguments, never
				// with a generic plan made while the tables were empty.
				var mode string
				if err := env.DB.QueryRowContext(ctx, "SHOW plan_cache_mode").Scan(&mode); err != nil || mode != "force_custom_plan" {
					t.Fatalf("plan_cache_mode = %q (%v), want force_custom_plan", mode, err)
				}
			}

			var all []thing
			if err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				return store.Select(ctx, tx, &all, "SELECT id, note, at, count FROM things WHERE count >= ? ORDER BY id", 1)
			}); err != nil {
				t.Fatal(err)
			}
			if len(all) != 3 || all[0].Note != "it's ? a 'quote'; DROP TABLE things" || !all[0].At.Equal(at) || all[2].Count != 13 {
				t.Fatalf("rows: %+v", all)
			}
			var one thing
			if err := store.Select(ctx, env.DB, &one, "SELECT id, note, at, count FROM things WHERE id = ?", "b"); err != nil || one.Count != 2 {
				t.Fatalf("one: %+v %v", one, err)
			}
			if err := store.Select(ctx, env.DB, &one, "SELECT id, note, at, count FROM things WHERE id = ?", "zzz"); !errors.Is(err, sql.ErrNoRows) {
				t.Fatalf("no row: %v, want sql.ErrNoRows", err)
			}

			// A failing statement fails the transaction, whether it runs at
			// once (SQLite) or at Flush (PostgreSQL); nothing of it remains.
			err = env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				b := store.NewBatch(tx)
				if err := b.Exec(ctx, "INSERT INTO things (id, note, at, count) VALUES (?, ?, ?, ?)", "d", "four", at, 4); err != nil {
					return err
				}
				if err := b.Exec(ctx, "INSERT INTO things (id, note, at, count) VALUES (?, ?, ?, ?)", "a", "dup", at, 5); err != nil {
					return err
				}
				return b.Flush(ctx)
			})
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), "unique") && !strings.Contains(err.Error(), "duplicate") {
				t.Fatalf("duplicate key: %v", err)
			}
			var n int
			if err := env.DB.QueryRowContext(ctx, "SELECT count(*) FROM things").Scan(&n); err != nil || n != 3 {
				t.Fatalf("after the failed batch: %d rows (%v), want 3", n, err)
			}
		})
	}
}
