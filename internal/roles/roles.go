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

// Runtime is what every long-running role is made of.
type Runtime struct {
	Config    config.Config
	Logger    *slog.Logger
	DB        *bun.DB
	Registry  *prometheus.Registry
	PubSub    *sqlpubsub.PubSub
	Transport router.Transport
	Outbox    *outbox.Publisher
	Router    *router.Router
	Checks    *health.Checks
	Migrator  *migrations.Migrator
	Handlers  handlers.Set
	Sweeper   *notify.Sweeper
	Scheduler *delivery.Scheduler
	Hub       *inapp.Hub
	Poison    *poison.Service
	FanOut    *broadcast.FanOut
	// Mailer e-mails the cron's reports; nil without SMTP.
	Mailer *timeliness.Mailer
}

// NewRuntime gathers a role's parts.
func NewRuntime(cfg config.Config, logger *slog.Logger, db *bun.DB, reg *prometheus.Registry, ps *sqlpubsub.PubSub,
	t router.Transport, ob *outbox.Publisher, rt *router.Router, checks *health.Checks, m *migrations.Migrator, hs handlers.Set,
	sw *notify.Sweeper, sched *delivery.Scheduler, hub *inapp.Hub, pq *poison.Service, fo *broadcast.FanOut, mailer *timeliness.Mailer) *Runtime {
	return &Runtime{Config: cfg, Logger: logger, DB: db, Registry: reg, PubSub: ps, Transport: t, Outbox: ob,
		Router: rt, Checks: checks, Migrator: m, Handlers: hs, Sweeper: sw, Scheduler: sched, Hub: hub, Poison: pq, FanOut: fo, Mailer: mailer}
}

// addReportMailer makes this process e-mail the reports the cron stores,
// when an SMTP server is configured.
func (r *Runtime) addReportMailer() error {
	if r.Mailer == nil {
		return nil
	}
	return r.Router.AddConsumer(router.Handler{
		Name:          timeliness.MailConsumer,
		Topic:         r.Config.TopicReportMail,
		ConsumerGroup: r.Config.ConsumerGroup(timeliness.MailConsumer),
		Handle:        r.Mailer.Handle,
	})
}

// addPoisonDrain drains the poison topic into the poison table, and
// exports the table's depth. A message the drain cannot store is
// redelivered, never poisoned again.
func (r *Runtime) addPoisonDrain() error {
	if err := r.Registry.Register(poison.NewCollector(r.DB, time.Now)); err != nil {
		return fmt.Errorf("poison metrics: %w", err)
	}
	return r.Router.AddConsumer(router.Handler{
		Name:          poison.DrainConsumer,
		Topic:         r.Config.TopicPoison,
		ConsumerGroup: r.Config.ConsumerGroup(poison.DrainConsumer),
		Handle:        r.Poison.Handle,
		NoPoison:      true,
	})
}

// addInAppBroadcast makes this replica read the in-app broadcast topic in a
// consumer group of its own, feeding its open streams.
func (r *Runtime) addInAppBroadcast() error {
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
		Handle:        r.Hub.Handle,
	})
}

// callbackRoutes are the providers' status callbacks the API receives.
func (r *Runtime) callbackRoutes() []api.Route {
	return []api.Route{{
		Pattern: "POST " + delivery.SMSCallbackPath,
		Handler: delivery.NewSMSCallbacks(r.DB, r.Outbox, r.Config.TopicSendNotification, r.Config.TwilioAuthToken, r.Config.PublicBaseURL(), time.Now, r.Logger),
	}}
}

func (r *Runtime) scheduler() func(context.Context) error {
	return func(ctx context.Context) error { return r.Scheduler.Run(ctx, r.Config.DeliveryPollInterval) }
}

func (r *Runtime) fanOut() func(context.Context) error {
	return func(ctx context.Context) error { return r.FanOut.Run(ctx, r.Config.BroadcastPollInterval) }
}

// sweeper is the sweep of notifications waiting for an unknown doctor, run
// by the worker (and serve); the process that runs it exports its metrics.
func (r *Runtime) sweeper() (func(context.Context) error, error) {
	if err := r.Registry.Register(r.Sweeper); err != nil {
		return nil, fmt.Errorf("pending notification metrics: %w", err)
	}
	return func(ctx context.Context) error { return r.Sweeper.Run(ctx, r.Sweeper.Interval()) }, nil
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
func (r *Runtime) prepare(ctx context.Context, migrate bool) error {
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

func (r *Runtime) addConsumer(name string) error {
	h, ok := r.Handlers[name]
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
func (r *Runtime) addForwarder() (bool, error) {
	if r.Transport.Name() != config.TransportKafka {
		return false, nil
	}
	err := outbox.AddForwarder(r.Router.Watermill(), r.PubSub, r.Transport.Publisher(), r.Config.TopicOutbox,
		r.Config.ConsumerGroup("forwarder"), logging.NewWatermill(r.Logger))
	return err == nil, err
}

// registerLag exports the lag of the given consumers' groups and, on
// Kafka, the outbox backlog, measured at each scrape.
func (r *Runtime) registerLag(consumers []string, withOutbox bool) error {
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

func (r *Runtime) routerCheck() {
	r.Checks.Add("router", func(context.Context) error {
		if !r.Router.IsRunning() {
			return errors.New("router is not running")
		}
		return nil
	})
}

func (r *Runtime) adminServer() *http.Server {
	mux := http.NewServeMux()
	health.Register(mux, r.Checks, r.Registry)
	return newServer(r.Config.AdminAddr, mux)
}

func (r *Runtime) process(servers []*http.Server, withRouter bool) *process {
	p := &process{logger: r.Logger, shutdownTimeout: r.Config.ShutdownTimeout, servers: servers}
	if withRouter {
		p.router = r.Router
	}
	return p
}

// Serve is `rfd serve`: every role in one process.
type Serve struct {
	*Runtime
	cron *cron.Runner
}

// NewServe returns the serve role: every role, the cron's jobs included.
func NewServe(r *Runtime, runner *cron.Runner) *Serve { return &Serve{Runtime: r, cron: runner} }

// Run runs until ctx is cancelled.
func (s *Serve) Run(ctx context.Context) error {
	if err := s.prepare(ctx, s.Config.AutoMigrate); err != nil {
		return err
	}
	names := make([]string, 0, len(s.Handlers))
	for name := range s.Handlers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := s.addConsumer(name); err != nil {
			return err
		}
	}
	fwd, err := s.addForwarder()
	if err != nil {
		return err
	}
	if err := s.addInAppBroadcast(); err != nil {
		return err
	}
	if err := s.registerLag(config.Consumers, true); err != nil {
		return err
	}
	if err := s.addPoisonDrain(); err != nil {
		return err
	}
	if err := s.addReportMailer(); err != nil {
		return err
	}
	withRouter := true
	if withRouter {
		s.routerCheck()
	}
	s.Logger.Info("serve starting", "transport", s.Transport.Name(), "consumers", names, "forwarder", fwd)
	apiServer, err := api.NewServer(api.Deps{Config: s.Config, DB: s.DB, Logger: s.Logger, InApp: s.Hub, Metrics: s.Registry}, s.Checks, s.Registry, s.callbackRoutes()...)
	if err != nil {
		return err
	}
	// serve keeps /metrics on its one port, beside the API: it is the
	// single-process convenience; the production roles serve it on the
	// admin listener only.
	srv := apiHTTPServer(s.Config.HTTPAddr, apiServer)
	sweep, err := s.sweeper()
	if err != nil {
		return err
	}
	p := s.process([]*http.Server{srv}, withRouter)
	p.background = append(p.background, sweep, s.fanOut(),
		func(ctx context.Context) error { return s.cron.Run(ctx, cronTick) })
	if _, ok := s.Handlers[config.ConsumerSendNotification]; ok {
		p.background = append(p.background, s.scheduler())
	}
	return p.run(ctx)
}

// API is `rfd api`.
type API struct{ *Runtime }

// NewAPI returns the api role.
func NewAPI(r *Runtime) *API { return &API{r} }

// Run runs until ctx is cancelled.
func (a *API) Run(ctx context.Context) error {
	if err := a.prepare(ctx, false); err != nil {
		return err
	}
	if err := a.addInAppBroadcast(); err != nil {
		return err
	}
	a.routerCheck()
	// No /metrics on the public port (nil gatherer): anyone who reaches the
	// API could read the process's internals; Prometheus scrapes the admin
	// listener, as it does for every other role.
	apiServer, err := api.NewServer(api.Deps{Config: a.Config, DB: a.DB, Logger: a.Logger, InApp: a.Hub, Metrics: a.Registry}, a.Checks, nil, a.callbackRoutes()...)
	if err != nil {
		return err
	}
	srv := apiHTTPServer(a.Config.HTTPAddr, apiServer)
	return a.process([]*http.Server{srv, a.adminServer()}, true).run(ctx)
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
	*Runtime
	name ConsumerName
}

// NewConsumer returns the consumer role for name.
func NewConsumer(r *Runtime, name ConsumerName) (*Consumer, error) {
	if err := ValidConsumer(string(name)); err != nil {
		return nil, err
	}
	return &Consumer{Runtime: r, name: name}, nil
}

// Run runs until ctx is cancelled.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.prepare(ctx, false); err != nil {
		return err
	}
	if err := c.addConsumer(string(c.name)); err != nil {
		return err
	}
	if err := c.registerLag([]string{string(c.name)}, false); err != nil {
		return err
	}
	c.routerCheck()
	c.Logger.Info("consumer starting", "consumer", string(c.name), "transport", c.Transport.Name())
	p := c.process([]*http.Server{c.adminServer()}, true)
	if c.name == config.ConsumerSendNotification {
		// Retries and deferred deliveries are published by the delivery
		// consumers themselves (SKIP LOCKED shares the work among replicas).
		p.background = append(p.background, c.scheduler())
	}
	return p.run(ctx)
}

// Worker is `rfd worker`: the outbox forwarder, the poison drain, the
// broadcast fan-out, the sweep of notifications waiting for unknown
// doctors, and the e-mailing of the cron's reports.
type Worker struct{ *Runtime }

// NewWorker returns the worker role.
func NewWorker(r *Runtime) *Worker { return &Worker{r} }

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
	if err := w.addPoisonDrain(); err != nil {
		return err
	}
	if err := w.addReportMailer(); err != nil {
		return err
	}
	sweep, err := w.sweeper()
	if err != nil {
		return err
	}
	w.routerCheck()
	p := w.process([]*http.Server{w.adminServer()}, true)
	p.background = append(p.background, sweep, w.fanOut())
	return p.run(ctx)
}

// Cron is `rfd cron`: the scheduled jobs, each slot run by one replica.
type Cron struct {
	*Runtime
	runner *cron.Runner
}

// NewCron returns the cron role.
func NewCron(r *Runtime, runner *cron.Runner) *Cron { return &Cron{Runtime: r, runner: runner} }

// cronTick is how often the cron looks for due slots.
const cronTick = time.Second

// Run runs until ctx is cancelled.
func (c *Cron) Run(ctx context.Context) error {
	if err := c.prepare(ctx, false); err != nil {
		return err
	}
	c.Logger.Info("cron starting", "jobs", c.runner.Jobs())
	p := c.process([]*http.Server{c.adminServer()}, false)
	p.background = append(p.background, func(ctx context.Context) error { return c.runner.Run(ctx, cronTick) })
	return p.run(ctx)
}
