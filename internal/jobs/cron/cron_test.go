package cron_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/internal/jobs/cron"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// clock is the controllable clock the cron tests share between replicas.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 3, 0, 30, 0, time.UTC)} }

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// Two replicas against one database: every slot runs exactly once.
func TestEachSlotRunsOnceAcrossReplicas(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresSQL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, name)
			clk := newClock()
			var runs atomic.Int32
			slots := sync.Map{}
			job := cron.Job{Name: "count", Spec: "@every 1m", Run: func(_ context.Context, slot time.Time) error {
				runs.Add(1)
				if _, dup := slots.LoadOrStore(slot, true); dup {
					t.Errorf("slot %s ran twice", slot)
				}
				return nil
			}}
			var replicas []*cron.Runner
			for _, inst := range []string{"cron-a", "cron-b"} {
				r, err := cron.NewRunner(env.DB, []cron.Job{job}, inst, clk.now, prometheus.NewRegistry(), discard)
				if err != nil {
					t.Fatal(err)
				}
				replicas = append(replicas, r)
			}
			ctx := context.Background()
			const slotsToRun = 10
			for range slotsToRun {
				clk.add(time.Minute)
				var wg sync.WaitGroup
				for _, r := range replicas {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := r.RunDue(ctx); err != nil {
							t.Error(err)
						}
					}()
				}
				wg.Wait()
			}
			if n := runs.Load(); n != slotsToRun {
				t.Fatalf("job ran %d times over %d slots", n, slotsToRun)
			}
			var rows int
			if err := env.DB.NewRaw("SELECT COUNT(*) FROM cron_runs WHERE job = 'count' AND status = 'ok'").Scan(ctx, &rows); err != nil || rows != slotsToRun {
				t.Fatalf("cron_runs = %d, %v", rows, err)
			}

			// Nothing is due before the next slot; a long gap runs once.
			if ran, _ := replicas[0].RunDue(ctx); len(ran) != 0 {
				t.Fatalf("ran %v before the next slot", ran)
			}
			clk.add(10 * time.Minute)
			ran, err := replicas[0].RunDue(ctx)
			if err != nil || len(ran) != 1 || runs.Load() != slotsToRun+1 {
				t.Fatalf("after a gap: %v %v, runs %d", ran, err, runs.Load())
			}
		})
	}
}

// A failing job is recorded as failed and runs again on its next slot.
func TestFailedRunIsRecorded(t *testing.T) {
	env := testenv.New(t, testenv.SQLiteSQL)
	clk := newClock()
	fail := true
	r, err := cron.NewRunner(env.DB, []cron.Job{
		{Name: "flaky", Spec: "*/5 * * * *", Run: func(context.Context, time.Time) error {
			if fail {
				return errors.New("provider down")
			}
			return nil
		}},
		{Name: "disabled", Spec: cron.Off, Run: func(context.Context, time.Time) error { t.Error("disabled job ran"); return nil }},
	}, "cron-a", clk.now, prometheus.NewRegistry(), discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Jobs(); len(got) != 1 || got[0] != "flaky" {
		t.Fatalf("jobs = %v", got)
	}
	ctx := context.Background()
	clk.add(5 * time.Minute)
	ran, err := r.RunDue(ctx)
	if err != nil || len(ran) != 1 || ran[0].Err == nil || !ran[0].Slot.Equal(time.Date(2026, 11, 25, 3, 5, 0, 0, time.UTC)) {
		t.Fatalf("ran %v %v", ran, err)
	}
	fail = false
	clk.add(5 * time.Minute)
	if ran, err := r.RunDue(ctx); err != nil || len(ran) != 1 || ran[0].Err != nil {
		t.Fatalf("second slot: %v %v", ran, err)
	}
	var statuses []string
	if err := env.DB.NewRaw("SELECT status || ':' || error FROM cron_runs ORDER BY slot").Scan(ctx, &statuses); err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 2 || statuses[0] != "failed:provider down" || statuses[1] != "ok:" {
		t.Fatalf("runs = %v", statuses)
	}
	if _, err := cron.Parse("every minute"); err == nil {
		t.Fatal("bad expression accepted")
	}
}

// A job the shutdown stops is recorded as interrupted, not failed, and no
// slot is claimed once the shutdown has begun.
func TestShutdownInterruptsTheRun(t *testing.T) {
	env := testenv.New(t, testenv.SQLiteSQL)
	clk := newClock()
	started := make(chan struct{})
	r, err := cron.NewRunner(env.DB, []cron.Job{
		{Name: "long", Spec: "@every 1m", Run: func(ctx context.Context, _ time.Time) error {
			close(started)
			<-ctx.Done()
			return fmt.Errorf("between batches: %w", ctx.Err())
		}},
		{Name: "after", Spec: "@every 1m", Run: func(context.Context, time.Time) error {
			t.Error("a slot was claimed after the shutdown began")
			return nil
		}},
	}, "cron-a", clk.now, prometheus.NewRegistry(), discard)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute)
	ctx, stop := context.WithCancel(context.Background())
	go func() { <-started; stop() }()
	ran, err := r.RunDue(ctx)
	if err != nil || len(ran) != 1 || ran[0].Job != "long" {
		t.Fatalf("ran %v %v", ran, err)
	}
	var statuses []string
	if err := env.DB.NewRaw("SELECT job || ':' || status FROM cron_runs ORDER BY job").Scan(context.Background(), &statuses); err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 1 || statuses[0] != "long:interrupted" {
		t.Fatalf("runs = %v", statuses)
	}
}
