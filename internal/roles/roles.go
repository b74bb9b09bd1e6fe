package roles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/delivery"
	"github.com/rfd-notify/rfd/internal/delivery/inapp"
	"github.com/rfd-notify/rfd/internal/jobs/broadcast"
	"github.com/rfd-notify/rfd/internal/jobs/cron"
	"github.com/rfd-notify/rfd/internal/jobs/poison"
	"github.com/rfd-notify/rfd/internal/jobs/timeliness"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/health"
	"github.com/rfd-notify/rfd/internal/platform/lag"
	"github.com/rfd-notify/rfd/internal/platform/logging"
	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/migrations"
	"github.com/rfd-notify/rfd/outbox"
	"github.com/rfd-notify/rfd/router"
)

// Base is what every long-running role is made of: the database, the
// transport and its outbox, metrics and readiness.
type Base struct {
	Config    config.Config
	Logger    *slog.Logger
	DB        *bun.DB
	Registry  *prometheus.Registry
	PubSub    *sqlpubsub.PubSub
	Transport router.Transport
	Outbox    *outbox.Publisher
	Checks    *health.Checks
	Migrator  *migrations.Migrator
}

// NewBase gathers a role's common parts.
func NewBase(cfg config.Config, logger *slog.Logger, db *bun.DB, reg *prometheus.Registry, ps *sqlpubsub.PubSub,
	t router.Transport, ob *outbox.Publisher, checks *health.Checks, m *migrations.Migrator) *Base {
	return &Base{Config: cfg, Logger: logger, DB: db, Registry: reg, PubSub: ps, Transport: t, Outbox: ob, Checks: checks, Migrator: m}
}

// Routed is a role that consumes messages: its Base and its router. The
// cron consumes none and has no router.
type Routed struct {
	*Base
	Router *router.Router
}

// NewRouted gives b its router.
func NewRouted(b *Base, rt *router.Router) *Routed { return &Routed{Base: b, Router: rt} }

// addReportMailer makes this process e-mail the reports the cron stores,
// when an SMTP server is configured (mailer is nil otherwise).
func (r *Routed) addReportMailer(mailer *timeliness.Mailer) error {
	if mailer == nil {
		return nil
	}
	return r.Router.AddConsumer(router.Handler{
		Name:          timeliness.MailConsumer,
		Topic:         r.Config.TopicReportMail,
		ConsumerGroup: r.Config.ConsumerGroup(timeliness.MailConsumer),
		Handle:        mailer.Handle,
	})
}

// addPoisonDrain drains the poison topic into the poison table, and
// exports the table's depth. A message the drain cannot store is
// redelivered, never poisoned again.
func (r *Routed) addPoisonDrain(svc *poison.Service) error {
	if err := r.Registry.Register(poison.NewCollector(r.DB, time.Now)); err != nil {
		return fmt.Errorf("poison metrics: %w", err)
	}
	return r.Router.AddConsumer(router.Handler{
		Name:          poison.DrainConsumer,
		Topic:         r.Config.TopicPoison,
		ConsumerGroup: r.Config.ConsumerGroup(poison.DrainConsumer),
		Handle:        svc.Handle,
		NoPoison:      true,
	})
}

// addInAppBroadcast makes this replica read the in-app broadcast topic in a
// consumer group of its own, feeding its open streams.
func (r *Routed) addInAppBroadcast(hub *inapp.Hub) error {
	instance := r.Config.InstanceID
	if instance == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "local"
		}
		instance = host
	}
	return r.Router.AddConsumer(router.Handler{
		Name:          "inapp-broadcast",
		Topic:         r.Config.TopicInApp,
		ConsumerGroup: r.Config.ConsumerGroup("inapp." + instance),
		Handle:        hub.Handle,
	})
}

func (b *Base) scheduler(sched *delivery.Scheduler) func(context.Context) error {
	return func(ctx context.Context) error { return sched.Run(ctx, b.Config.DeliveryPollInterval) }
}

func (b *Base) fanOut(fo *broadcast.FanOut) func(context.Context) error {
	return func(ctx context.Context) error { return fo.Run(ctx, b.Config.BroadcastPollInterval) }
}

// sweeper is the sweep of notifications waiting for an unknown doctor, run
// by the worker (and serve); the process that runs it exports its metrics.
func (b *Base) sweeper(sw *notify.Sweeper) (func(context.Context) error, error) {
	if err := b.Registry.Register(sw); err != nil {
		return nil, fmt.Errorf("pending notification metrics: %w", err)
	}
	return func(ctx context.Context) error { return sw.Run(ctx, sw.Interval()) }, nil
}

// currentSchema makes sure the schema is current before a role or command
// uses it: with apply it applies what is pending (and returns the names),
// otherwise it refuses to go on while any migration is pending, in one line
// naming the database.
func currentSchema(ctx context.Context, m *migrations.Migrator, apply bool, dbURL string) ([]string, error) {
	if apply {
		return m.Up(ctx)
	}
	pending, err := m.Pending(ctx)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", store.Redact(dbURL), err)
	}
	if pending > 0 {
		return nil, fmt.Errorf("database %s is not migrated (%d of %d migrations pending): run `rfd migrate up` first",
			store.Redact(dbURL), pending, migrations.Count())
	}
	return nil, nil
}

// prepare makes sure the schema is current and every topic table the outbox
// and the router use exists.
func (r *Base) prepare(ctx context.Context, migrate bool) error {
	applied, err := currentSchema(ctx, r.Migrator, migrate, r.Config.DatabaseURL)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		r.Logger.Info("migrations applied", "migrations", applied)
	}
	if err := r.Outbox.EnsureTopics(ctx, OutboxTopics(r.Config)...); err != nil {
		return err
	}
	if r.Transport.Name() == config.TransportSQL {
		for _, t := range InboundTopics(r.Config) {
			if err := r.PubSub.InitializeTopic(ctx, t); err != nil {
				return fmt.Errorf("initialize topic %s: %w", t, err)
			}
		}
	}
	return nil
}

func (r *Routed) addConsumer(hs handlers.Set, name string) error {
	h, ok := hs[name]
	if !ok {
		return fmt.Errorf("consumer %q has no handler in this build", name)
	}
	if h.Topic == "" {
		h.Topic = r.Config.TopicOf(name)
	}
	if h.ConsumerGroup == "" {
		h.ConsumerGroup = r.Config.ConsumerGroup(name)
	}
	if h.Name == "" {
		h.Name = name
	}
	return r.Router.AddConsumer(h)
}

// addForwarder relays the outbox to Kafka. On the SQL transport the outbox
// writes to the destination tables directly and there is nothing to relay.
func (r *Routed) addForwarder() (bool, error) {
	if r.Transport.Name() != config.TransportKafka {
		return false, nil
	}
	err := outbox.AddForwarder(r.Router.Watermill(), r.PubSub, r.Transport.Publisher(), r.Config.TopicOutbox,
		r.Config.ConsumerGroup("forwarder"), logging.NewWatermill(r.Logger))
	return err == nil, err
}

// registerLag exports the lag of the given consumers' groups and, on
// Kafka, the outbox backlog, measured at each scrape.
func (r *Base) registerLag(consumers []string, withOutbox bool) error {
	pairs := make([]lag.Pair, 0, len(consumers))
	for _, c := range consumers {
		pairs = append(pairs, lag.Pair{Topic: r.Config.TopicOf(c), Group: r.Config.ConsumerGroup(c)})
	}
	sqlr, err := lag.NewSQLReader(r.DB, r.PubSub)
	if err != nil {
		return err
	}
	var consumersReader, outboxReader lag.Reader = sqlr, nil
	if r.Transport.Name() == config.TransportKafka {
		consumersReader = lag.NewKafkaReader(r.Config.KafkaBrokers)
		if withOutbox {
			outboxReader = sqlr
		}
	}
	outboxPair := lag.Pair{Topic: r.Config.TopicOutbox, Group: r.Config.ConsumerGroup("forwarder")}
	if err := r.Registry.Register(lag.NewCollector(consumersReader, pairs, outboxReader, outboxPair, r.Logger)); err != nil {
		return fmt.Errorf("lag metrics: %w", err)
	}
	return nil
}

func (r *Routed) routerCheck() {
	r.Checks.Add("router", func(context.Context) error {
		if !r.Router.IsRunning() {
			return errors.New("router is not running")
		}
		return nil
	})
}

func (r *Base) adminServer() *http.Server {
	mux := http.NewServeMux()
	health.Register(mux, r.Checks, r.Registry)
	return newServer(r.Config.AdminAddr, mux)
}

// process runs servers and, when rt is not nil, the router.
func (r *Base) process(servers []*http.Server, rt *router.Router) *process {
	return &process{logger: r.Logger, shutdownTimeout: r.Config.ShutdownTimeout, servers: servers, router: rt}
}

// Serve is `rfd serve`: every role in one process.
type Serve struct {
	*Routed
	server   APIServer
	hub      *inapp.Hub
	handlers handlers.Set
	poison   *poison.Service
	mailer   *timeliness.Mailer
	sweep    *notify.Sweeper
	sched    *delivery.Scheduler
	fo       *broadcast.FanOut
	cron     *cron.Runner
}

// NewServe returns the serve role: every role, the cron's jobs included.
func NewServe(r *Routed, server APIServer, hub *inapp.Hub, hs handlers.Set, pq *poison.Service, mailer *timeliness.Mailer,
	sw *notify.Sweeper, sched *delivery.Scheduler, fo *broadcast.FanOut, runner *cron.Runner) *Serve {
	return &Serve{Routed: r, server: server, hub: hub, handlers: hs, poison: pq, mailer: mailer, sweep: sw, sched: sched, fo: fo, cron: runner}
}

// Run runs until ctx is cancelled.
func (s *Serve) Run(ctx context.Context) error {
	if err := s.prepare(ctx, s.Config.AutoMigrate); err != nil {
		return err
	}
	names := make([]string, 0, len(s.handlers))
	for name := range s.handlers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := s.addConsumer(s.handlers, name); err != nil {
			return err
		}
	}
	fwd, err := s.addForwarder()
	if err != nil {
		return err
	}
	if err := s.addInAppBroadcast(s.hub); err != nil {
		return err
	}
	if err := s.registerLag(config.Consumers, true); err != nil {
		return err
	}
	if err := s.addPoisonDrain(s.poison); err != nil {
		return err
	}
	if err := s.addReportMailer(s.mailer); err != nil {
		return err
	}
	s.routerCheck()
	s.Logger.Info("serve starting", "transport", s.Transport.Name(), "consumers", names, "forwarder", fwd)
	// serve keeps /metrics on its one port, beside the API (ServeMetrics):
	// it is the single-process convenience; the production roles serve it
	// on the admin listener only.
	apiServer, err := s.server()
	if err != nil {
		return err
	}
	srv := apiHTTPServer(s.Config.HTTPAddr, apiServer)
	sweep, err := s.sweeper(s.sweep)
	if err != nil {
		return err
	}
	p := s.process([]*http.Server{srv}, s.Router)
	p.background = append(p.background, sweep, s.fanOut(s.fo),
		func(ctx context.Context) error { return s.cron.Run(ctx, cronTick) })
	if _, ok := s.handlers[config.ConsumerSendNotification]; ok {
		p.background = append(p.background, s.scheduler(s.sched))
	}
	return p.run(ctx)
}

// API is `rfd api`: the REST API and this replica's in-app broadcast
// consumer. It builds no provider client.
type API struct {
	*Routed
	server APIServer
	hub    *inapp.Hub
}

// NewAPI returns the api role.
func NewAPI(r *Routed, server APIServer, hub *inapp.Hub) *API {
	return &API{Routed: r, server: server, hub: hub}
}

// Run runs until ctx is cancelled.
func (a *API) Run(ctx context.Context) error {
	if err := a.prepare(ctx, false); err != nil {
		return err
	}
	if err := a.addInAppBroadcast(a.hub); err != nil {
		return err
	}
	a.routerCheck()
	apiServer, err := a.server()
	if err != nil {
		return err
	}
	srv := apiHTTPServer(a.Config.HTTPAddr, apiServer)
	return a.process([]*http.Server{srv, a.adminServer()}, a.Router).run(ctx)
}

// apiHTTPServer serves the API on addr. Its shutdown ends the open
// notification streams at once: Shutdown waits for open requests, and a
// stream would hold it until the shutdown timeout.
func apiHTTPServer(addr string, s *api.Server) *http.Server {
	srv := newServer(addr, s.Handler())
	srv.RegisterOnShutdown(s.EndStreams)
	return srv
}

// Consumer is `rfd consume NAME`.
type Consumer struct {
	*Routed
	name     ConsumerName
	handlers handlers.Set
	send     SendDispatch
}

// NewConsumer returns the consumer role for name.
func NewConsumer(r *Routed, name ConsumerName, hs handlers.Set, sd SendDispatch) (*Consumer, error) {
	if err := ValidConsumer(string(name)); err != nil {
		return nil, err
	}
	return &Consumer{Routed: r, name: name, handlers: hs, send: sd}, nil
}

// Run runs until ctx is cancelled.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.prepare(ctx, false); err != nil {
		return err
	}
	if err := c.addConsumer(c.handlers, string(c.name)); err != nil {
		return err
	}
	if err := c.registerLag([]string{string(c.name)}, false); err != nil {
		return err
	}
	c.routerCheck()
	c.Logger.Info("consumer starting", "consumer", string(c.name), "transport", c.Transport.Name())
	p := c.process([]*http.Server{c.adminServer()}, c.Router)
	if c.name == config.ConsumerSendNotification {
		// Retries and deferred deliveries are published by the delivery
		// consumers themselves (SKIP LOCKED shares the work among replicas).
		p.background = append(p.background, c.scheduler(c.send.Scheduler))
	}
	return p.run(ctx)
}

// Worker is `rfd worker`: the outbox forwarder, the poison drain, the
// broadcast fan-out, the sweep of notifications waiting for unknown
// doctors, and the e-mailing of the cron's reports.
type Worker struct {
	*Routed
	poison *poison.Service
	mailer *timeliness.Mailer
	sweep  *notify.Sweeper
	fo     *broadcast.FanOut
}

// NewWorker returns the worker role.
func NewWorker(r *Routed, pq *poison.Service, mailer *timeliness.Mailer, sw *notify.Sweeper, fo *broadcast.FanOut) *Worker {
	return &Worker{Routed: r, poison: pq, mailer: mailer, sweep: sw, fo: fo}
}

// Run runs until ctx is cancelled.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.prepare(ctx, false); err != nil {
		return err
	}
	fwd, err := w.addForwarder()
	if err != nil {
		return err
	}
	// The worker always runs: it reports every group's lag, so a consumer
	// with no replica left still shows up as falling behind.
	if err := w.registerLag(config.Consumers, true); err != nil {
		return err
	}
	if !fwd {
		w.Logger.Info("sql transport: the outbox writes to its topics directly, no relay to run")
	}
	if err := w.addPoisonDrain(w.poison); err != nil {
		return err
	}
	if err := w.addReportMailer(w.mailer); err != nil {
		return err
	}
	sweep, err := w.sweeper(w.sweep)
	if err != nil {
		return err
	}
	w.routerCheck()
	p := w.process([]*http.Server{w.adminServer()}, w.Router)
	p.background = append(p.background, sweep, w.fanOut(w.fo))
	return p.run(ctx)
}

// Cron is `rfd cron`: the scheduled jobs, each slot run by one replica. It
// consumes nothing: no router.
type Cron struct {
	*Base
	runner *cron.Runner
}

// NewCron returns the cron role.
func NewCron(b *Base, runner *cron.Runner) *Cron { return &Cron{Base: b, runner: runner} }

// cronTick is how often the cron looks for due slots.
const cronTick = time.Second

// Run runs until ctx is cancelled.
func (c *Cron) Run(ctx context.Context) error {
	if err := c.prepare(ctx, false); err != nil {
		return err
	}
	c.Logger.Info("cron starting", "jobs", c.runner.Jobs())
	p := c.process([]*http.Server{c.adminServer()}, nil)
	p.background = append(p.background, func(ctx context.Context) error { return c.runner.Run(ctx, cronTick) })
	return p.run(ctx)
}
