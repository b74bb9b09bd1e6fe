package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// The inbox contract, on SQLite and PostgreSQL alike.
func TestInbox(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresSQL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, name)
			ctx := context.Background()
			if _, err := env.DB.ExecContext(ctx, `CREATE TABLE effects (id TEXT NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			effect := func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO effects (id) VALUES ('x')`)
				return err
			}
			count := func() int {
				var n int
				if err := env.DB.QueryRowContext(ctx, `SELECT count(*) FROM effects`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}

			t.Run("first delivery runs, redelivery is a no-op", func(t *testing.T) {
				dup, err := env.Inbox.Process(ctx, "c1", "m1", effect)
				if err != nil || dup {
					t.Fatalf("first: dup=%v err=%v", dup, err)
				}
				dup, err = env.Inbox.Process(ctx, "c1", "m1", effect)
				if err != nil || !dup {
					t.Fatalf("second: dup=%v err=%v", dup, err)
				}
				if n := count(); n != 1 {
					t.Fatalf("effects = %d, want 1", n)
				}
			})

			t.Run("the same message id in another consumer is new", func(t *testing.T) {
				dup, err := env.Inbox.Process(ctx, "c2", "m1", effect)
				if err != nil || dup {
					t.Fatalf("dup=%v err=%v", dup, err)
				}
			})

			t.Run("failed work records nothing and can run again", func(t *testing.T) {
				before := count()
				boom := errors.New("boom")
				_, err := env.Inbox.Process(ctx, "c1", "m-fail", func(ctx context.Context, tx bun.Tx) error {
					if err := effect(ctx, tx); err != nil {
						return err
					}
					return boom
				})
				if !errors.Is(err, boom) {
					t.Fatalf("err = %v, want boom", err)
				}
				if n := count(); n != before {
					t.Fatalf("effects = %d after a failed attempt, want %d", n, before)
				}
				dup, err := env.Inbox.Process(ctx, "c1", "m-fail", effect)
				if err != nil || dup {
					t.Fatalf("retry: dup=%v err=%v", dup, err)
				}
				if n := count(); n != before+1 {
					t.Fatalf("effects = %d after the retry, want %d", n, before+1)
				}
			})

			t.Run("concurrent deliveries of one message run the work once", func(t *testing.T) {
				before := count()
				var ran atomic.Int32
				var wg sync.WaitGroup
				for range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						dup, err := env.Inbox.Process(ctx, "c1", "m-race", func(ctx context.Context, tx bun.Tx) error {
							ran.Add(1)
							return effect(ctx, tx)
						})
						if err != nil {
							t.Errorf("concurrent: %v", err)
						}
						_ = dup
					}()
				}
				wg.Wait()
				if n := count(); n != before+1 {
					t.Fatalf("effects = %d, want %d (work ran %d times)", n, before+1, ran.Load())
				}
			})

			t.Run("an empty message id is refused", func(t *testing.T) {
				if _, err := env.Inbox.Process(ctx, "c1", "", effect); err == nil {
					t.Fatal("want an error")
				}
			})

			t.Run("a batch runs the work of its new messages once, all or nothing", func(t *testing.T) {
				before := count()
				ids := []string{"b1", "m1", "b2", "b1"} // m1 is processed already; b1 comes twice
				var got []bool
				fresh, err := env.Inbox.ProcessBatch(ctx, "c1", ids, func(ctx context.Context, tx bun.Tx, fresh []bool) error {
					got = fresh
					for i, f := range fresh {
						if f {
							if _, err := tx.ExecContext(ctx, `INSERT INTO effects (id) VALUES (?)`, ids[i]); err != nil {
								return err
							}
						}
					}
					return nil
				})
				want := []bool{true, false, true, false}
				if err != nil || !slices.Equal(fresh, want) || !slices.Equal(got, want) {
					t.Fatalf("fresh = %v (work saw %v), err = %v; want %v", fresh, got, err, want)
				}
				if n := count(); n != before+2 {
					t.Fatalf("effects = %d, want %d", n, before+2)
				}

				boom := errors.New("boom")
				_, err = env.Inbox.ProcessBatch(ctx, "c1", []string{"b3", "b4"}, func(ctx context.Context, tx bun.Tx, fresh []bool) error {
					if err := effect(ctx, tx); err != nil {
						return err
					}
					return boom
				})
				if !errors.Is(err, boom) {
					t.Fatalf("err = %v, want boom", err)
				}
				ran := false
				fresh, err = env.Inbox.ProcessBatch(ctx, "c1", []string{"b4", "b3", "b1"}, func(ctx context.Context, tx bun.Tx, fresh []bool) error {
					ran = true
					return nil
				})
				if err != nil || !ran || !slices.Equal(fresh, []bool{true, true, false}) {
					t.Fatalf("after a failed batch: fresh = %v, ran = %v, err = %v; want b3 and b4 new again", fresh, ran, err)
				}
				if n := count(); n != before+2 {
					t.Fatalf("effects = %d after the failed batch, want %d", n, before+2)
				}

				ran = false
				fresh, err = env.Inbox.ProcessBatch(ctx, "c1", []string{"b1", "b2"}, func(context.Context, bun.Tx, []bool) error {
					ran = true
					return nil
				})
				if err != nil || ran || !slices.Equal(fresh, []bool{false, false}) {
					t.Fatalf("all processed: fresh = %v, ran = %v, err = %v; want no work", fresh, ran, err)
				}
				if _, err := env.Inbox.ProcessBatch(ctx, "c1", []string{"b5", ""}, func(context.Context, bun.Tx, []bool) error { return nil }); err == nil {
					t.Fatal("an empty message id in a batch: want an error")
				}
			})
		})
	}
}
