package roles

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/google/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/delivery"
	"github.com/rfd-notify/rfd/internal/jobs/cron"
	"github.com/rfd-notify/rfd/internal/jobs/digest"
	"github.com/rfd-notify/rfd/internal/jobs/escalation"
	"github.com/rfd-notify/rfd/internal/jobs/retention"
	"github.com/rfd-notify/rfd/internal/jobs/timeliness"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
	"github.com/rfd-notify/rfd/outbox"
)

// CronSet provides the cron role's jobs and their runner.
var CronSet = wire.NewSet(NewLadder, NewRetention, NewCronJobs, NewCronRunner)

// NewLadder returns the critical-result escalation ladder.
func NewLadder(cfg config.Config, db *bun.DB, n *notify.Notifier, ob *outbox.Publisher, reg prometheus.Registerer) (*escalation.Ladder, error) {
	return escalation.New(db, n, ob, escalation.Options{
		SLA: cfg.EscalationSLA, OnCallDoctor: cfg.EscalationOnCallDoctor, SendTopic: cfg.TopicSendNotification,
	}, time.Now, reg)
}

// NewRetention returns the retention job.
func NewRetention(cfg config.Config, db *bun.DB, ps *sqlpubsub.PubSub, logger *slog.Logger) *retention.Retention {
	topics := append(InboundTopics(cfg), cfg.TopicOutbox)
	return retention.New(db, ps, topics, retention.Policy{
		Notifications: cfg.RetentionNotifications, Inbox: cfg.RetentionInbox, Topics: cfg.RetentionTopics,
		Poison: cfg.RetentionPoison, Audit: cfg.RetentionAudit, Batch: cfg.RetentionBatch,
	}, time.Now, logger)
}

// CronJobs are the jobs `rfd cron` runs.
type CronJobs []cron.Job

// NewCronJobs lists the jobs with their configured schedules.
func NewCronJobs(cfg config.Config, db *bun.DB, sched *delivery.Scheduler, ladder *escalation.Ladder, ret *retention.Retention,
	n *notify.Notifier, ob *outbox.Publisher, logger *slog.Logger) CronJobs {
	reportSpec := cfg.CronTimelinessReport
	if cfg.TimelinessReportTo == "" {
		reportSpec = cron.Off
	}
	return CronJobs{
		{Name: "scheduled-notifications", Spec: cfg.CronScheduledNotifications, Run: func(ctx context.Context, _ time.Time) error {
			// The scheduler publishes due deliveries (send_at reached, quiet
			// hours over, retries due) batch by batch.
			for {
				n, err := sched.Tick(ctx)
				if err != nil || n == 0 {
					return err
				}
			}
		}},
		{Name: "escalations", Spec: cfg.CronEscalations, Run: ladder.Run},
		{Name: "stuck-deliveries", Spec: cfg.CronStuckDeliveries, Run: func(ctx context.Context, _ time.Time) error {
			n, err := delivery.SweepStuck(ctx, db, cfg.StuckDeliveryTimeout, time.Now())
			if n > 0 {
				logger.WarnContext(ctx, "deliveries stuck in sending sent back to retry", "deliveries", n, "timeout", cfg.StuckDeliveryTimeout.String())
			}
			return err
		}},
		{Name: "digests", Spec: cfg.CronDigests, Run: digest.New(db, n, time.Now, logger).Run},
		{Name: "weekly-summary", Spec: cfg.CronWeeklySummary, Run: digest.NewWeekly(db, n, time.Now, logger).Run},
		{Name: "retention", Spec: cfg.CronRetention, Run: ret.Run},
		{Name: "timeliness-report", Spec: reportSpec, Run: timeliness.NewWeeklyMail(db, ob, cfg.TopicReportMail, cfg.TimelinessReportTo,
			cfg.EscalationSLA, time.Now, logger).Run},
	}
}

// NewCronRunner returns the runner of the cron jobs; this replica is named
// by RFD_INSTANCE_ID or the host name in cron_runs.
func NewCronRunner(cfg config.Config, db *bun.DB, jobs CronJobs, reg prometheus.Registerer, logger *slog.Logger) (*cron.Runner, error) {
	instance := cfg.InstanceID
	if instance == "" {
		instance, _ = os.Hostname()
	}
	return cron.NewRunner(db, jobs, instance, time.Now, reg, logger)
}
