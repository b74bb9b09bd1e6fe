// Package testenv builds the service's real parts for tests, on each of the
// combinations it runs on in production or embedded: SQLite with the SQL
// transport, PostgreSQL with the SQL transport, and PostgreSQL with Kafka (an
// in-process kfake broker reached over loopback TCP). Tests that take an Env
// run the same assertions on every combination, the way river runs one
// driver suite against every database driver.
package testenv

import (
	"context"
	"github.com/ThreeDotsLabs/watermill/message"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/kafkapubsub/kafkatest"
	"github.com/rfd-notify/rfd/internal/platform/logging"
	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
	"github.com/rfd-notify/rfd/internal/roles"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/pgtest"
	"github.com/rfd-notify/rfd/migrations"
	"github.com/rfd-notify/rfd/outbox"
	"github.com/rfd-notify/rfd/router"
)

// Combination names.
const (
	SQLiteSQL     = "sqlite+sql"
	PostgresSQL   = "postgres+sql"
	PostgresKafka = "postgres+kafka"
)

// Combinations lists every combination, production path last.
var Combinations = []string{SQLiteSQL, PostgresSQL, PostgresKafka}

// KafkaPartitions is how many partitions kfake gives each topic.
const KafkaPartitions = 12

// Env is one combination's parts, built by the same providers the binary uses.
type Env struct {
	Name      string
	Config    config.Config
	Logger    *slog.Logger
	DB        *bun.DB
	Registry  *prometheus.Registry
	PubSub    *sqlpubsub.PubSub
	Transport router.Transport
	Outbox    *outbox.Publisher
	Inbox     *store.Inbox
}

// Each runs fn once per combination as parallel subtests.
func Each(t *testing.T, fn func(t *testing.T, env *Env)) {
	t.Helper()
	for _, name := range Combinations {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, New(t, name))
		})
	}
}

// New builds the combination name with a migrated, empty database. Options
// tweak the configuration before anything is built.
func New(t testing.TB, name string, opts ...func(*config.Config)) *Env {
	t.Helper()
	ctx := context.Background()

	cfg, err := config.Load(nil)
	if err != nil {
		t.Fatalf("testenv: default config: %v", err)
	}
	cfg.RetryInitialInterval = 10 * time.Millisecond
	cfg.RetryMaxInterval = 50 * time.Millisecond
	cfg.RetryMaxAttempts = 3
	cfg.SQLPollInterval = 20 * time.Millisecond
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.LogLevel = "warn"
	switch name {
	case SQLiteSQL:
		cfg.DatabaseURL = "sqlite://" + filepath.Join(t.TempDir(), "rfd.db")
		cfg.Transport = config.TransportSQL
	case PostgresSQL:
		cfg.DatabaseURL = pgtest.NewDatabase(t)
		cfg.Transport = config.TransportSQL
	case PostgresKafka:
		cfg.DatabaseURL = pgtest.NewDatabase(t)
		cfg.Transport = config.TransportKafka
		cfg.KafkaBrokers = kafkatest.Start(t, KafkaPartitions)
	default:
		t.Fatalf("testenv: unknown combination %q", name)
	}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("testenv: config: %v", err)
	}

	var w io.Writer = io.Discard
	if os.Getenv("RFD_TEST_LOG") != "" {
		w = os.Stderr
	}
	logger, err := logging.New(w, cfg.LogLevel, "text")
	if err != nil {
		t.Fatal(err)
	}
	logger = logger.With("env", name)

	db, closeDB, err := roles.OpenDB(ctx, cfg)
	if err != nil {
		t.Fatalf("testenv: open db: %v", err)
	}
	t.Cleanup(closeDB)
	if _, err := migrations.NewMigrator(db).Up(ctx); err != nil {
		t.Fatalf("testenv: migrate: %v", err)
	}

	ps, err := roles.NewSQLPubSub(db, cfg, logger)
	if err != nil {
		t.Fatalf("testenv: sql pubsub: %v", err)
	}
	tr, closeTr, err := roles.NewTransport(cfg, db, ps, logger)
	if err != nil {
		t.Fatalf("testenv: transport: %v", err)
	}
	t.Cleanup(closeTr)

	return &Env{
		Name:      name,
		Config:    cfg,
		Logger:    logger,
		DB:        db,
		Registry:  roles.NewRegistry(),
		PubSub:    ps,
		Transport: tr,
		Outbox:    roles.NewOutbox(cfg, ps),
		Inbox:     store.NewInbox(db),
	}
}

// IsKafka reports whether the env runs on Kafka.
func (e *Env) IsKafka() bool { return e.Config.Transport == config.TransportKafka }

// NewRouter returns the process router of this env, with the outbox
// forwarder registered on Kafka. Start it with Run.
func (e *Env) NewRouter(t testing.TB) *router.Router {
	t.Helper()
	rt, err := roles.NewRouter(e.Config, e.Transport, e.Registry, e.DB, e.Logger)
	if err != nil {
		t.Fatalf("testenv: router: %v", err)
	}
	if e.IsKafka() {
		if err := outbox.AddForwarder(rt.Watermill(), e.PubSub, e.Transport.Publisher(), e.Config.TopicOutbox,
			e.Config.ConsumerGroup("forwarder"), logging.NewWatermill(e.Logger)); err != nil {
			t.Fatalf("testenv: forwarder: %v", err)
		}
	}
	return rt
}

// EnsureTopics creates the tables of SQL-transport topics (and the outbox's
// forwarder topic on Kafka) before anything publishes to them.
func (e *Env) EnsureTopics(t testing.TB, topics ...string) {
	t.Helper()
	ctx := context.Background()
	if err := e.Outbox.EnsureTopics(ctx, topics...); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if !e.IsKafka() {
		for _, tp := range topics {
			if err := e.PubSub.InitializeTopic(ctx, tp); err != nil {
				t.Fatalf("testenv: initialize %s: %v", tp, err)
			}
		}
	}
}

// Run starts rt and stops it when the test ends; it returns once every
// handler is subscribed.
func Run(t testing.TB, rt *router.Router) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- rt.Run(context.Background()) }()
	select {
	case <-rt.Running():
	case err := <-done:
		t.Fatalf("testenv: router stopped before running: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("testenv: router did not start within 60s")
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("testenv: close router: %v", err)
		}
		<-done
	})
}

// Eventually polls cond every 20ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %s (last: %s)", what, timeout, last)
}

// Read subscribes to topic in its own consumer group and hands every
// message to fn, acking it afterwards, until the test ends.
func (e *Env) Read(t testing.TB, topic, group string, fn func(*message.Message)) {
	t.Helper()
	sub, err := e.Transport.Subscriber(group)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ch {
			fn(m)
			m.Ack()
		}
	}()
	t.Cleanup(func() { cancel(); _ = sub.Close(); <-done })
}
