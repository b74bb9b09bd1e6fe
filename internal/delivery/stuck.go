package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
)

// SweepStuck sends deliveries stuck in sending for longer than timeout back
// to retry: a consumer that died between its claim and its record leaves
// the delivery in sending, and if the command is never redelivered nothing
// else moves it. They go back to queued, due now; the scheduler publishes
// their next attempt (the provider gets the same idempotency key, the
// delivery id). It returns how many it swept.
func SweepStuck(ctx context.Context, db bun.IDB, timeout time.Duration, now time.Time) (int, error) {
	now = now.UTC()
	cutoff := now.Add(-timeout)
	res, err := db.NewRaw(`UPDATE deliveries SET status = ?, reason_code = ?, status_reason = ?, next_attempt_at = ?, updated_at = ?
WHERE status = ? AND updated_at < ?`,
		domain.DeliveryQueued, ReasonStuckRetried, ReasonMessage(ReasonStuckRetried), now, now,
		domain.DeliverySending, cutoff).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("sweep stuck deliveries: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sweep stuck deliveries: %w", err)
	}
	return int(n), nil
}
