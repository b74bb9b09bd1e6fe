// Package roles assembles the roles of the rfd binary from their parts. The
// providers here are wired by google/wire (see wire.go at the top level);
// tests call them directly.
package roles

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/delivery"
	"github.com/rfd-notify/rfd/internal/delivery/inapp"
	"github.com/rfd-notify/rfd/internal/jobs/broadcast"
	"github.com/rfd-notify/rfd/internal/jobs/poison"
	"github.com/rfd-notify/rfd/internal/jobs/timeliness"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/health"
	"github.com/rfd-notify/rfd/internal/platform/kafkapubsub"
	"github.com/rfd-notify/rfd/internal/platform/logging"
	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/migrations"
	"github.com/rfd-notify/rfd/outbox"
	"github.com/rfd-notify/rfd/router"
)

// NewLogger builds the process logger and makes it slog's default.
func NewLogger(cfg config.Config) (*slog.Logger, error) {
	l, err := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return nil, err
	}
	slog.SetDefault(l)
	return l, nil
}

// OpenDB opens the database, creating a missing SQLite file; the cleanup
// closes it. Only what migrates the database opens it this way.
func OpenDB(ctx context.Context, cfg config.Config) (*bun.DB, func(), error) {
	return openDB(ctx, cfg, true)
}

// OpenExistingDB opens a database that must already exist: every role and
// command but `serve` and `migrate up`. A missing SQLite file is an error
// naming the URL, never a new empty database.
func OpenExistingDB(ctx context.Context, cfg config.Config) (*bun.DB, func(), error) {
	return openDB(ctx, cfg, false)
}

// OpenServeDB is serve's database: created when serve is to migrate it
// (RFD_AUTO_MIGRATE), otherwise it must exist like any role's.
func OpenServeDB(ctx context.Context, cfg config.Config) (*bun.DB, func(), error) {
	return openDB(ctx, cfg, cfg.AutoMigrate)
}

// CreateDatabase says whether a `rfd migrate` action may create the
// database: `up` does, `down` and `status` do not.
type CreateDatabase bool

// OpenMigrateDB opens the database of a `rfd migrate` action.
func OpenMigrateDB(ctx context.Context, cfg config.Config, create CreateDatabase) (*bun.DB, func(), error) {
	return openDB(ctx, cfg, bool(create))
}

func openDB(ctx context.Context, cfg config.Config, create bool) (*bun.DB, func(), error) {
	open := store.OpenExisting
	if create {
		open = store.Open
	}
	db, err := open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	return db, func() { _ = db.Close() }, nil
}

// NewRegistry is the Prometheus registry of the process, with Go runtime
// and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Gatherer exposes the registry for /metrics.
func Gatherer(reg *prometheus.Registry) prometheus.Gatherer { return reg }

// Registerer exposes the registry to components registering metrics.
func Registerer(reg *prometheus.Registry) prometheus.Registerer { return reg }

// NewSQLPubSub is watermill-sql over the service database: the transport on
// `sql`, the outbox and forwarder source on `kafka`.
func NewSQLPubSub(db *bun.DB, cfg config.Config, logger *slog.Logger) (*sqlpubsub.PubSub, error) {
	ps, err := sqlpubsub.New(db, logging.NewWatermill(logger), sqlpubsub.Options{PollInterval: cfg.SQLPollInterval})
	if err != nil {
		return nil, fmt.Errorf("sql pubsub: %w", err)
	}
	return ps, nil
}

// NewTransport picks the transport named by RFD_TRANSPORT.
func NewTransport(cfg config.Config, db *bun.DB, ps *sqlpubsub.PubSub, logger *slog.Logger) (router.Transport, func(), error) {
	switch cfg.Transport {
	case config.TransportKafka:
		t, err := router.NewKafkaTransport(kafkapubsub.Config{Brokers: cfg.KafkaBrokers, ClientID: "rfd",
			SessionTimeout: cfg.KafkaSessionTimeout, HeartbeatInterval: cfg.KafkaHeartbeatInterval, InstanceID: cfg.KafkaInstanceID},
			logging.NewWatermill(logger))
		if err != nil {
			return nil, nil, err
		}
		return t, func() { _ = t.Close() }, nil
	default:
		t := router.NewSQLTransport(db, ps)
		return t, func() { _ = t.Close() }, nil
	}
}

// NewOutbox returns the outbox of the configured transport.
func NewOutbox(cfg config.Config, ps *sqlpubsub.PubSub) *outbox.Publisher {
	if cfg.Transport == config.TransportKafka {
		return outbox.NewForwarded(ps, cfg.TopicOutbox)
	}
	return outbox.NewSQL(ps)
}

// OutboxTopics are the topics anything in the service publishes to.
func OutboxTopics(cfg config.Config) []string {
	return []string{
		cfg.TopicCheckupEvents, cfg.TopicOrderHistoryEvents, cfg.TopicUserCreated,
		cfg.TopicInternalLogin, cfg.TopicSendNotification, cfg.TopicInApp, cfg.TopicReportMail,
	}
}

// InboundTopics are the topics the router reads; on the SQL transport their
// tables are created before the first subscriber polls them.
func InboundTopics(cfg config.Config) []string {
	return append(OutboxTopics(cfg), cfg.TopicPoison)
}

// NewRouter builds the process's one router. A transient failure is not
// poisoned while the database is unreachable (see router.Options).
func NewRouter(cfg config.Config, t router.Transport, reg prometheus.Registerer, db *bun.DB, logger *slog.Logger) (*router.Router, error) {
	return router.New(router.Options{
		PoisonTopic:          cfg.TopicPoison,
		RetryMaxAttempts:     cfg.RetryMaxAttempts,
		RetryInitialInterval: cfg.RetryInitialInterval,
		RetryMaxInterval:     cfg.RetryMaxInterval,
		HandlerTimeout:       cfg.HandlerTimeout,
		Throttle:             cfg.Throttle,
		CloseTimeout:         cfg.ShutdownTimeout,
		Dependencies:         db.PingContext,
	}, t, reg, logger)
}

// NewChecks returns the readiness checks every role has: the database and
// the transport.
func NewChecks(db *bun.DB, t router.Transport) *health.Checks {
	c := &health.Checks{}
	c.Add("database", db.PingContext)
	c.Add("transport", t.Ping)
	return c
}

// NewMigrator returns the migrator of the database.
func NewMigrator(db *bun.DB) *migrations.Migrator { return migrations.NewMigrator(db) }

// NewInbox returns the inbox.
func NewInbox(db *bun.DB) *store.Inbox { return store.NewInbox(db) }

// NewNotifier returns the notification maker shared by the consumers, the
// API and the cron.
func NewNotifier(cfg config.Config, ob *outbox.Publisher) *notify.Notifier {
	return notify.New(ob, cfg.TopicSendNotification, cfg.PortalURL, time.Now)
}

// NewSweeper returns the sweeper of pending notifications.
func NewSweeper(cfg config.Config, db *bun.DB, n *notify.Notifier, logger *slog.Logger) *notify.Sweeper {
	return notify.NewSweeper(db, n, cfg.PendingReportAfter, logger)
}

// NewHandlers builds the consumers this build implements.
func NewHandlers(cfg config.Config, inbox *store.Inbox, ob *outbox.Publisher, n *notify.Notifier, d *delivery.Dispatcher, reg prometheus.Registerer) handlers.Set {
	return handlers.Consumers(handlers.Deps{Config: cfg, Inbox: inbox, Outbox: ob, Notifier: n, Dispatcher: d, Now: time.Now, Registerer: reg})
}

// NewReportMailer returns the consumer e-mailing the cron's reports, or nil
// when no SMTP server is configured (config refuses a report recipient
// without one).
func NewReportMailer(db *bun.DB, s delivery.Senders, logger *slog.Logger) *timeliness.Mailer {
	if s.Email == nil {
		return nil
	}
	return timeliness.NewMailer(db, s.Email, time.Now, logger)
}

// NewSenders builds the provider clients of the configured channels.
func NewSenders(ctx context.Context, cfg config.Config) (delivery.Senders, error) {
	return delivery.SendersFromConfig(ctx, cfg)
}

// NewDispatcher returns the send-notification consumer's dispatcher.
func NewDispatcher(cfg config.Config, db *bun.DB, inbox *store.Inbox, ob *outbox.Publisher, s delivery.Senders,
	reg prometheus.Registerer, logger *slog.Logger) (*delivery.Dispatcher, error) {
	return delivery.NewDispatcher(db, inbox, ob, s, delivery.Options{
		MaxAttempts: cfg.DeliveryMaxAttempts, InitialBackoff: cfg.DeliveryInitialBackoff, MaxBackoff: cfg.DeliveryMaxBackoff,
		SendTopic: cfg.TopicSendNotification, InAppTopic: cfg.TopicInApp, ConsumerName: config.ConsumerSendNotification,
	}, time.Now, reg, logger)
}

// NewPoison returns the operators' poison service.
func NewPoison(db *bun.DB, ob *outbox.Publisher) *poison.Service {
	return poison.New(db, ob, time.Now)
}

// NewFanOut returns the broadcast fan-out.
func NewFanOut(cfg config.Config, db *bun.DB, n *notify.Notifier, logger *slog.Logger) *broadcast.FanOut {
	return broadcast.NewFanOut(db, n, broadcast.Options{ChunkSize: cfg.BroadcastChunkSize, Pause: cfg.BroadcastPause}, time.Now, logger)
}

// NewHub returns the registry of this replica's open in-app streams.
func NewHub() *inapp.Hub { return inapp.NewHub() }

// NewScheduler returns the publisher of due delivery attempts.
func NewScheduler(cfg config.Config, db *bun.DB, ob *outbox.Publisher, logger *slog.Logger) *delivery.Scheduler {
	return delivery.NewScheduler(db, ob, cfg.TopicSendNotification, time.Now, logger)
}

// ConsumerName is the consumer a `rfd consume NAME` process runs.
type ConsumerName string

// ErrUnknownConsumer is returned for a name that is not one of config.Consumers.
type ErrUnknownConsumer struct{ Name string }

func (e ErrUnknownConsumer) Error() string {
	return fmt.Sprintf("unknown consumer %q; valid consumers: %v", e.Name, config.Consumers)
}

// ValidConsumer checks name against config.Consumers.
func ValidConsumer(name string) error {
	if !slices.Contains(config.Consumers, name) {
		return ErrUnknownConsumer{Name: name}
	}
	return nil
}
