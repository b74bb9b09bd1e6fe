package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/outbox"
)

// Scheduler publishes the attempts that are due: retries after a transient
// failure and deliveries deferred by quiet hours. The due time lives in the
// database, so it survives restarts, and a waiting delivery holds up no
// partition. On PostgreSQL, SKIP LOCKED lets several replicas share the work.
type Scheduler struct {
	db     *bun.DB
	outbox *outbox.Publisher
	topic  string
	now    func() time.Time
	logger *slog.Logger
	batch  int
}

// NewScheduler returns the scheduler publishing to topic.
func NewScheduler(db *bun.DB, ob *outbox.Publisher, topic string, now func() time.Time, logger *slog.Logger) *Scheduler {
	if now == nil {
		now = time.Now
	}
	return &Scheduler{db: db, outbox: ob, topic: topic, now: now, logger: logger, batch: 200}
}

// Run publishes due attempts every interval until ctx is done.
func (s *Scheduler) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for {
			n, err := s.Tick(ctx)
			if err != nil && ctx.Err() == nil {
				s.logger.ErrorContext(ctx, "delivery scheduler", "error", err)
			}
			if n < s.batch || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick publishes one batch of due attempts and returns how many.
func (s *Scheduler) Tick(ctx context.Context) (int, error) {
	n := 0
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		now := s.now().UTC()
		q := store.NewQueries(tx)
		due, err := q.DeliveryListDue(ctx, &store.DeliveryListDueParams{Now: now, Limit: s.batch})
		if err != nil {
			return err
		}
		for i := range due {
			dl := &due[i]
			nt, err := q.NotificationGet(ctx, dl.NotificationID)
			if err != nil {
				return fmt.Errorf("notification of due delivery: %w", err)
			}
			if err := PublishCommand(ctx, tx, s.outbox, s.topic, *nt, nt.DoctorID, dl, dl.Attempt+1, now); err != nil {
				return err
			}
			if err := q.DeliveryClearDue(ctx, &store.DeliveryClearDueParams{ID: dl.ID, Now: now}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
