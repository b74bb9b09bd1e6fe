package notify

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"
)

// Sweeper looks after the intents waiting for doctors the service does not
// know yet. It releases those whose doctor has since been registered (a
// checkup event and the doctor's user-created event committing at the same
// moment can miss each other), and reports, once, those that have waited
// longer than reportAfter: operators then chase user management.
type Sweeper struct {
	db          *bun.DB
	notifier    *Notifier
	reportAfter time.Duration
	logger      *slog.Logger
	waiting     prometheus.Gauge
	overdue     prometheus.Gauge
}

// NewSweeper returns the sweeper; its gauges are registered in reg.
func NewSweeper(db *bun.DB, n *Notifier, reportAfter time.Duration, reg prometheus.Registerer, logger *slog.Logger) (*Sweeper, error) {
	s := &Sweeper{
		db: db, notifier: n, reportAfter: reportAfter, logger: logger,
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "rfd", Name: "pending_notifications",
			Help: "Notifications waiting for a doctor the service does not know yet.",
		}),
		overdue: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "rfd", Name: "pending_notifications_overdue",
			Help: "Pending notifications older than RFD_PENDING_REPORT_AFTER.",
		}),
	}
	for _, c := range []prometheus.Collector{s.waiting, s.overdue} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("sweeper metrics: %w", err)
		}
	}
	return s, nil
}

// Run sweeps every interval until ctx is done.
func (s *Sweeper) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, _, err := s.SweepOnce(ctx); err != nil && ctx.Err() == nil {
			s.logger.ErrorContext(ctx, "pending notifications sweep failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// SweepOnce releases what can be released and reports what is overdue.
func (s *Sweeper) SweepOnce(ctx context.Context) (released, reported int, err error) {
	var ready []string
	if err := s.db.NewRaw(`SELECT DISTINCT p.doctor_external_id FROM pending_notifications p
JOIN doctors d ON d.external_user_id = p.doctor_external_id ORDER BY 1`).Scan(ctx, &ready); err != nil {
		return 0, 0, fmt.Errorf("sweep: find releasable: %w", err)
	}
	for _, ext := range ready {
		err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			n, err := s.notifier.ReleasePending(ctx, tx, ext)
			released += n
			return err
		})
		if err != nil {
			return released, 0, fmt.Errorf("sweep: release: %w", err)
		}
	}

	cutoff := s.notifier.now().UTC().Add(-s.reportAfter)
	var overdue []struct {
		Doctor string `bun:"doctor_external_id"`
		N      int    `bun:"n"`
	}
	if err := s.db.NewRaw(`SELECT doctor_external_id, COUNT(*) AS n FROM pending_notifications
WHERE reported_at IS NULL AND received_at < ? GROUP BY doctor_external_id ORDER BY doctor_external_id`, cutoff).Scan(ctx, &overdue); err != nil {
		return released, 0, fmt.Errorf("sweep: find overdue: %w", err)
	}
	for _, o := range overdue {
		// External user ids identify doctors, not patients: safe to log.
		s.logger.WarnContext(ctx, "notifications are waiting for a doctor user management never registered",
			"doctor_external_id", o.Doctor, "notifications", o.N, "older_than", s.reportAfter.String())
		reported += o.N
	}
	if len(overdue) > 0 {
		if _, err := s.db.NewRaw(`UPDATE pending_notifications SET reported_at = ? WHERE reported_at IS NULL AND received_at < ?`,
			s.notifier.now().UTC(), cutoff).Exec(ctx); err != nil {
			return released, reported, fmt.Errorf("sweep: mark reported: %w", err)
		}
	}

	var waiting, late int
	if err := s.db.NewRaw(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN received_at < ? THEN 1 ELSE 0 END), 0) FROM pending_notifications`, cutoff).
		Scan(ctx, &waiting, &late); err != nil {
		return released, reported, fmt.Errorf("sweep: count: %w", err)
	}
	s.waiting.Set(float64(waiting))
	s.overdue.Set(float64(late))
	return released, reported, nil
}
