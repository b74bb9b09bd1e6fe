// Package cron runs the service's scheduled jobs. Each job has a cron
// expression; every slot of it (the time the expression names) runs at most
// once across any number of `rfd cron` replicas: the replica that inserts
// the (job, slot) row of cron_runs runs it, the others skip it. Jobs publish
// only through the outbox and are idempotent: each does what is due as of
// now, so a slot missed while no replica ran is caught up by the next one.
package cron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	robfig "github.com/robfig/cron/v3"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/store"
)

// Off disables a job when given as its schedule.
const Off = "off"

// parser reads standard five-field expressions ("*/5 * * * *") and the
// descriptors (@hourly, @daily, @every 10m). Slots are in UTC unless the
// expression starts with CRON_TZ=.
var parser = robfig.NewParser(robfig.Minute | robfig.Hour | robfig.Dom | robfig.Month | robfig.Dow | robfig.Descriptor)

// Parse checks a schedule; Off parses to nil.
func Parse(spec string) (robfig.Schedule, error) {
	if strings.TrimSpace(spec) == Off {
		return nil, nil
	}
	s, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("cron expression %q: %w", spec, err)
	}
	return s, nil
}

// Job is one scheduled job. Run gets the slot it runs for.
type Job struct {
	Name string
	Spec string
	Run  func(ctx context.Context, slot time.Time) error
}

type scheduled struct {
	Job
	schedule robfig.Schedule
	next     time.Time
}

// Runner runs the jobs' due slots.
type Runner struct {
	q        store.CronRunExecutor
	jobs     []*scheduled
	instance string
	now      func() time.Time
	logger   *slog.Logger
	runs     *prometheus.CounterVec
	mu       sync.Mutex
}

// NewRunner returns a runner of jobs (those whose Spec is Off are left
// out). instance names this replica in cron_runs; now is the clock. The
// first slot of each job is the first after now.
func NewRunner(db *bun.DB, jobs []Job, instance string, now func() time.Time, reg prometheus.Registerer, logger *slog.Logger) (*Runner, error) {
	if now == nil {
		now = time.Now
	}
	r := &Runner{q: store.NewQueries(db), instance: instance, now: now, logger: logger}
	start := now().UTC()
	for _, j := range jobs {
		s, err := Parse(j.Spec)
		if err != nil {
			return nil, fmt.Errorf("cron job %s: %w", j.Name, err)
		}
		if s == nil {
			continue
		}
		r.jobs = append(r.jobs, &scheduled{Job: j, schedule: s, next: s.Next(start)})
	}
	r.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "rfd", Name: "cron_runs_total",
		Help: "Job slots this replica ran, by job and outcome (ok, failed, interrupted by a shutdown); slots another replica claimed are skipped.",
	}, []string{"job", "outcome"})
	if reg != nil {
		if err := reg.Register(r.runs); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("cron metrics: %w", err)
			}
			r.runs = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return r, nil
}

// Jobs names the scheduled jobs.
func (r *Runner) Jobs() []string {
	out := make([]string, 0, len(r.jobs))
	for _, j := range r.jobs {
		out = append(out, j.Name)
	}
	return out
}

// Run runs due slots every tick until ctx is done.
func (r *Runner) Run(ctx context.Context, tick time.Duration) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if _, err := r.RunDue(ctx); err != nil && ctx.Err() == nil {
			r.logger.ErrorContext(ctx, "cron", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Ran is one slot this replica claimed and ran.
type Ran struct {
	Job  string
	Slot time.Time
	Err  error
}

// RunDue runs, for each job whose next slot has come, the latest due slot
// if this replica claims it. Earlier missed slots are not run one by one:
// a job run does everything due as of now.
func (r *Runner) RunDue(ctx context.Context) ([]Ran, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now().UTC()
	var ran []Ran
	for _, j := range r.jobs {
		if ctx.Err() != nil {
			// Shutting down: claim nothing more; the next run catches up.
			return ran, nil
		}
		if j.next.After(now) {
			continue
		}
		slot := j.next
		for n := j.schedule.Next(slot); !n.After(now); n = j.schedule.Next(n) {
			slot = n
		}
		j.next = j.schedule.Next(slot)
		claimed, err := r.claim(ctx, j.Name, slot, now)
		if err != nil {
			return ran, err
		}
		if !claimed {
			continue
		}
		runErr := r.runOne(ctx, j, slot)
		ran = append(ran, Ran{Job: j.Name, Slot: slot, Err: runErr})
	}
	return ran, nil
}

func (r *Runner) claim(ctx context.Context, job string, slot, now time.Time) (bool, error) {
	claimed, err := r.q.CronRunClaim(ctx, &store.CronRunClaimParams{Job: job, Slot: slot, Instance: r.instance, At: now})
	if err != nil {
		return false, fmt.Errorf("cron: %w", err)
	}
	return claimed, nil
}

func (r *Runner) runOne(ctx context.Context, j *scheduled, slot time.Time) (runErr error) {
	defer func() {
		if p := recover(); p != nil {
			runErr = fmt.Errorf("job panicked: %v", p)
		}
		status, msg, outcome := "ok", "", "ok"
		switch {
		case runErr == nil:
		case ctx.Err() != nil:
			// Stopped by the shutdown (a driver does not always wrap the
			// context's error, so any error after it counts; the error
			// text is kept). Every job does what is due as of now, so the
			// next slot, on any replica, picks up where this one stopped:
			// not a failure.
			status, msg, outcome = "interrupted", runErr.Error(), "interrupted"
			r.logger.InfoContext(ctx, "cron job interrupted by the shutdown", "job", j.Name, "slot", slot, "error", runErr)
		default:
			status, msg, outcome = "failed", runErr.Error(), "failed"
			r.logger.ErrorContext(ctx, "cron job failed", "job", j.Name, "slot", slot, "error", runErr)
		}
		r.runs.WithLabelValues(j.Name, outcome).Inc()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := r.q.CronRunFinish(fctx, &store.CronRunFinishParams{
			Job: j.Name, Slot: slot, Status: status, Error: truncate(msg, 2000), At: r.now().UTC(),
		}); err != nil {
			r.logger.ErrorContext(ctx, "cron: record run", "job", j.Name, "error", err)
		}
	}()
	return j.Run(ctx, slot)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
