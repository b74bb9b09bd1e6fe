package store

import (
	"context"
	"fmt"
	"time"
)

// CronRunExecutor holds the statements on cron_runs: one row per (job,
// slot), the claim that makes a slot run on one replica only.
type CronRunExecutor interface {
	CronRunClaim(ctx context.Context, params *CronRunClaimParams) (bool, error)
	CronRunFinish(ctx context.Context, params *CronRunFinishParams) error
}

// CronRunClaimParams claims Job's Slot for Instance, started At.
type CronRunClaimParams struct {
	Job      string
	Slot     time.Time
	Instance string
	At       time.Time
}

// CronRunFinishParams records how Job's Slot ended: Status (ok, failed,
// interrupted), Error (empty when ok) and the time it ended At.
type CronRunFinishParams struct {
	Job    string
	Slot   time.Time
	Status string
	Error  string
	At     time.Time
}

// CronRunClaim inserts the (job, slot) row, running; it reports whether
// this call inserted it, that is whether the caller runs the slot. A slot
// another replica claimed first is left alone.
func (q *Queries) CronRunClaim(ctx context.Context, params *CronRunClaimParams) (bool, error) {
	res, err := q.db.NewRaw(`INSERT INTO cron_runs (job, slot, instance, started_at, status) VALUES (?, ?, ?, ?, 'running')
ON CONFLICT (job, slot) DO NOTHING`, params.Job, params.Slot, params.Instance, params.At).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("claim cron run %s at %s: %w", params.Job, params.Slot.Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim cron run %s: %w", params.Job, err)
	}
	return n == 1, nil
}

func (q *Queries) CronRunFinish(ctx context.Context, params *CronRunFinishParams) error {
	if _, err := q.db.NewRaw(`UPDATE cron_runs SET status = ?, error = ?, finished_at = ? WHERE job = ? AND slot = ?`,
		params.Status, params.Error, params.At, params.Job, params.Slot).Exec(ctx); err != nil {
		return fmt.Errorf("finish cron run %s: %w", params.Job, err)
	}
	return nil
}
