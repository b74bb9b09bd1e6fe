package notify

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/uptrace/bun"
)

// Sweeper looks after the intents waiting for doctors the service does not
// know yet. It releases those whose doctor has since been registered
// (user-created releases them itself; this is the safety net, e.g. for a
// doctor row written by hand), and reports, once, those that have waited
// longer than reportAfter: operators then chase user management. It is
// also the collector of rfd_pending_notifications and
// rfd_pending_notifications_overdue, read from the table at scrape time:
// an intent counts as overdue as soon as it has waited reportAfter,
// whenever the last sweep ran.
type Sweeper struct {
	db          *bun.DB
	notifier    *Notifier
	reportAfter time.Duration
	logger      *slog.Logger
	waiting     *prometheus.Desc
	overdue     *prometheus.Desc
	errors      *prometheus.Desc
}

// NewSweeper returns the sweeper. Register it, as a collector, once per
// process that runs it.
func NewSweeper(db *bun.DB, n *Notifier, reportAfter time.Duration, logger *slog.Logger) *Sweeper {
	return &Sweeper{
		db: db, notifier: n, reportAfter: reportAfter, logger: logger,
		waiting: prometheus.NewDesc("rfd_pending_notifications",
			"Notifications waiting for a doctor the service does not know yet.", nil, nil),
		overdue: prometheus.NewDesc("rfd_pending_notifications_overdue",
			"Pending notifications that have waited longer than RFD_PENDING_REPORT_AFTER.", nil, nil),
		errors: prometheus.NewDesc("rfd_pending_notifications_scrape_error",
			"1 when the pending notifications could not be counted for this scrape.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (s *Sweeper) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.waiting
	ch <- s.overdue
	ch <- s.errors
}

// scrapeTimeout bounds the query of one scrape.
const scrapeTimeout = 3 * time.Second

// Collect implements prometheus.Collector.
func (s *Sweeper) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	waiting, late, err := s.count(ctx)
	failed := 0.0
	if err != nil {
		failed = 1
		s.logger.WarnContext(ctx, "pending notifications: count for metrics failed", "error", err)
	} else {
		ch <- prometheus.MustNewConstMetric(s.waiting, prometheus.GaugeValue, float64(waiting))
		ch <- prometheus.MustNewConstMetric(s.overdue, prometheus.GaugeValue, float64(late))
	}
	ch <- prometheus.MustNewConstMetric(s.errors, prometheus.GaugeValue, failed)
}

// count counts the intents waiting, and those of them waiting longer than
// reportAfter, reported or not.
func (s *Sweeper) count(ctx context.Context) (waiting, late int, err error) {
	cutoff := s.notifier.now().UTC().Add(-s.reportAfter)
	c, err := store.NewQueries(s.db).ParkingCount(ctx, cutoff)
	if err != nil {
		return 0, 0, err
	}
	return c.Waiting, c.Overdue, nil
}

// Interval is how often Run should sweep: twice per reportAfter, so that
// an intent is reported at most half of reportAfter late, within one
// second and one minute.
func (s *Sweeper) Interval() time.Duration {
	return min(max(s.reportAfter/2, time.Second), time.Minute)
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
	q := store.NewQueries(s.db)
	ready, err := q.ParkingListReleasable(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("sweep: %w", err)
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
	if released > 0 {
		// user-created releases a doctor's intents itself: these were
		// parked for a doctor registered some other way.
		s.logger.WarnContext(ctx, "released notifications that waited for a doctor already registered", "notifications", released)
	}

	cutoff := s.notifier.now().UTC().Add(-s.reportAfter)
	overdue, err := q.ParkingListOverdue(ctx, cutoff)
	if err != nil {
		return released, 0, fmt.Errorf("sweep: %w", err)
	}
	for _, o := range overdue {
		// External user ids identify doctors, not patients: safe to log.
		s.logger.WarnContext(ctx, "notifications are waiting for a doctor user management never registered",
			"doctor_external_id", o.ExternalID, "notifications", o.N, "older_than", s.reportAfter.String())
		reported += o.N
	}
	if len(overdue) > 0 {
		if err := q.ParkingMarkReported(ctx, &store.ParkingMarkReportedParams{Before: cutoff, At: s.notifier.now().UTC()}); err != nil {
			return released, reported, fmt.Errorf("sweep: %w", err)
		}
	}

	return released, reported, nil
}
