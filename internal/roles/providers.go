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

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/auth"
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
// without one). It has its own email client, from RFD_SMTP_* alone: the
// worker that runs it reads no other channel's settings. The cleanup
// closes the client's idle SMTP sessions.
func NewReportMailer(cfg config.Config, db *bun.DB, logger *slog.Logger) (*timeliness.Mailer, func(), error) {
	c, err := delivery.EmailFromConfig(cfg)
	if err != nil || c == nil {
		return nil, func() {}, err
	}
	return timeliness.NewMailer(db, c, time.Now, logger), func() { _ = c.Close() }, nil
}

// NewSenders builds the provider clients of the configured channels. The
// cleanup closes what they keep open between sends (idle SMTP sessions);
// it runs when the role has stopped, after the last send.
func NewSenders(ctx context.Context, cfg config.Config) (delivery.Senders, func(), error) {
	s, err := delivery.SendersFromConfig(ctx, cfg)
	if err != nil {
		return s, nil, err
	}
	return s, s.Close, nil
}

// NewDispatcher returns the send-notification consumer's dispatcher.
func NewDispatcher(cfg config.Config, db *bun.DB, inbox *store.Inbox, ob *outbox.Publisher, s delivery.Senders,
	reg prometheus.Registerer, logger *slog.Logger) (*delivery.Dispatcher, error) {
	return delivery.NewDispatcher(db, inbox, ob, s, delivery.Options{
		MaxAttempts: cfg.DeliveryMaxAttempts, InitialBackoff: cfg.DeliveryInitialBackoff, MaxBackoff: cfg.DeliveryMaxBackoff,
		SendTopic: cfg.TopicSendNotification, InAppTopic: cfg.TopicInApp, ConsumerName: config.ConsumerSendNotification,
		Batch: cfg.DeliveriesBatch,
	}, time.Now, reg, logger)
}

// SendDispatch is the delivery machinery of the send-notification
// consumer: its dispatcher (with the provider clients) and the scheduler
// of its retries and deferred deliveries. Both are nil in any other
// consumer's process, which talks to no provider.
type SendDispatch struct {
	Dispatcher *delivery.Dispatcher
	Scheduler  *delivery.Scheduler
}

// NewConsumerSendDispatch builds the provider clients, the dispatcher and
// the scheduler when the process consumes send-notification, and nothing
// otherwise: only that consumer reads the channels' settings. The cleanup
// closes the provider clients.
func NewConsumerSendDispatch(ctx context.Context, name ConsumerName, cfg config.Config, db *bun.DB, inbox *store.Inbox,
	ob *outbox.Publisher, reg prometheus.Registerer, logger *slog.Logger) (SendDispatch, func(), error) {
	if name != config.ConsumerSendNotification {
		return SendDispatch{}, func() {}, nil
	}
	s, closeSenders, err := NewSenders(ctx, cfg)
	if err != nil {
		return SendDispatch{}, nil, err
	}
	d, err := NewDispatcher(cfg, db, inbox, ob, s, reg, logger)
	if err != nil {
		closeSenders()
		return SendDispatch{}, nil, err
	}
	return SendDispatch{Dispatcher: d, Scheduler: NewScheduler(cfg, db, ob, logger)}, closeSenders, nil
}

// NewConsumerHandlers builds the consumers of a `rfd consume` process:
// send-notification among them only when sd has its dispatcher.
func NewConsumerHandlers(cfg config.Config, inbox *store.Inbox, ob *outbox.Publisher, n *notify.Notifier, sd SendDispatch, reg prometheus.Registerer) handlers.Set {
	return NewHandlers(cfg, inbox, ob, n, sd.Dispatcher, reg)
}

// NewAuthenticator returns the API's authenticator of doctors' tokens
// (RFD_JWT_*) and API keys.
func NewAuthenticator(cfg config.Config, db *bun.DB, logger *slog.Logger) (*auth.Authenticator, error) {
	return auth.New(cfg, db, auth.WithLogger(logger), auth.WithClock(time.Now))
}

// PublicMetrics is the gatherer of /metrics on the API's own port, or nil
// for none.
type PublicMetrics prometheus.Gatherer

// ServeMetrics is serve's: /metrics beside the API on its one port, the
// single-process convenience.
func ServeMetrics(reg *prometheus.Registry) PublicMetrics { return reg }

// NoPublicMetrics is the api role's: no /metrics on the public port, where
// anyone who reaches the API could read the process's internals;
// Prometheus scrapes the admin listener, as it does for every other role.
func NoPublicMetrics() PublicMetrics { return nil }

// APIServer builds the API server. The api role and serve call it in Run,
// once the schema is current: a database that is not migrated is refused
// in one line before the authenticator, built here, says anything about
// its keys.
type APIServer func() (*api.Server, error)

// NewAPIServer returns the builder of the API over the role's services,
// with the providers' status callbacks beside it.
func NewAPIServer(cfg config.Config, db *bun.DB, logger *slog.Logger, reg *prometheus.Registry, checks *health.Checks,
	ob *outbox.Publisher, n *notify.Notifier, pq *poison.Service, hub *inapp.Hub, metrics PublicMetrics) APIServer {
	return func() (*api.Server, error) {
		authn, err := NewAuthenticator(cfg, db, logger)
		if err != nil {
			return nil, err
		}
		callbacks := []api.Route{{
			Pattern: "POST " + delivery.SMSCallbackPath,
			Handler: delivery.NewSMSCallbacks(db, ob, cfg.TopicSendNotification, cfg.TwilioAuthToken, cfg.PublicBaseURL(), time.Now, logger),
		}}
		return api.NewServer(api.Deps{Config: cfg, DB: db, Auth: authn, Outbox: ob, Notifier: n, Poison: pq,
			Logger: logger, InApp: hub, Metrics: reg}, checks, metrics, callbacks...)
	}
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
