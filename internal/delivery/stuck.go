package delivery

import (
	"context"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
	"github.com/uptrace/bun"
)

// SweepStuck sends deliveries stuck in sending for longer than timeout back
// to retry: a consumer that died between its claim and its record leaves
// the delivery in sending, and if the command is never redelivered nothing
// else moves it. They go back to queued, due now; the scheduler publishes
// their next attempt (the provider gets the same idempotency key, the
// delivery id). It returns how many it swept.
func SweepStuck(ctx context.Context, db bun.IDB, timeout time.Duration, now time.Time) (int, error) {
	now = now.UTC()
	return store.NewQueries(db).DeliverySweepStuck(ctx, &store.DeliverySweepStuckParams{Cutoff: now.Add(-timeout), Now: now,
		ReasonCode: ReasonStuckRetried, StatusReason: ReasonMessage(ReasonStuckRetried)})
}
