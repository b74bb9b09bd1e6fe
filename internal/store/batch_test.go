package store_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
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

// Rows scans the same typed values on every path: the pool (native pgx on
// PostgreSQL), a transaction, and SQLite; NULLs into pointers; an error
// from the row function stops the scan and comes back.
func TestRows(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresSQL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, name)
			ctx := context.Background()
			if _, err := env.DB.NewCreateTable().Model((*thing)(nil)).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 11, 25, 8, 30, 0, 123000000, time.UTC)
			if _, err := env.DB.NewInsert().Model(&[]thing{{ID: "a", Note: "it's", At: at, Count: 1}, {ID: "b", Note: "", At: at.Add(time.Hour), Count: 2}}).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			type row struct {
				id    string
				note  *string
				at    time.Time
				count int64
			}
			read := func(db bun.IDB) []row {
				t.Helper()
				var out []row
				err := store.Rows(ctx, db, `SELECT id, NULLIF(note, ''), at, count FROM things WHERE count >= ? ORDER BY id`, []any{1}, func(scan store.Scan) error {
					var r row
					if err := scan(&r.id, &r.note, &r.at, &r.count); err != nil {
						return err
					}
					out = append(out, r)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			check := func(where string, got []row) {
				t.Helper()
				if len(got) != 2 || got[0].id != "a" || got[0].note == nil || *got[0].note != "it's" || !got[0].at.Equal(at) || got[0].count != 1 ||
					got[1].note != nil || !got[1].at.Equal(at.Add(time.Hour)) {
					t.Fatalf("%s: %+v", where, got)
				}
			}
			check("pool", read(env.DB))
			if err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				check("tx", read(tx))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			stop := errors.New("stop")
			n := 0
			err := store.Rows(ctx, env.DB, `SELECT id FROM things ORDER BY id`, nil, func(scan store.Scan) error {
				n++
				return stop
			})
			if !errors.Is(err, stop) || n != 1 {
				t.Fatalf("stop: %v after %d rows", err, n)
			}
			if err := store.Rows(ctx, env.DB, `SELECT nope FROM things`, nil, func(store.Scan) error { return nil }); err == nil {
				t.Fatal("bad query: no error")
			}
			// The pool is still usable after a failed native query.
			check("pool again", read(env.DB))
		})
	}
}

func TestRepeat(t *testing.T) {
	for _, c := range []struct {
		n    int
		want string
	}{{0, ""}, {1, "(?, ?)"}, {3, "(?, ?), (?, ?), (?, ?)"}} {
		if got := store.Repeat("(?, ?)", c.n); got != c.want {
			t.Errorf("Repeat(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
