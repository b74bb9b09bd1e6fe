package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/kafkapubsub/kafkatest"
	"github.com/rfd-notify/rfd/internal/testkit/pgtest"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
	"github.com/rfd-notify/rfd/test/bench/baseline"
)

const (
	defaultEvents  = 50000
	defaultDoctors = 1000
	// stallTimeout fails a run whose inbox stops growing for this long
	// (a poisoned event never gets an inbox row).
	stallTimeout = 2 * time.Minute
	pollInterval = 100 * time.Millisecond
)

// benchEvent is one checkup event as its producer sends it.
type benchEvent = baseline.Event

// BenchmarkCheckupEvents measures the hand-written baseline, then the
// service, on the same events; see the package documentation.
func BenchmarkCheckupEvents(b *testing.B) {
	b.StopTimer()
	n := envInt(b, "RFD_BENCH_EVENTS", defaultEvents)
	doctors := min(envInt(b, "RFD_BENCH_DOCTORS", defaultDoctors), n)
	evs := makeEvents(b, n, doctors)

	baseRate, baseElapsed, baseCPU := runBaseline(b, evs)
	svcRate, svcElapsed, svcCPU := runService(b, evs, doctors)
	// Last: its large tables must not load the server the others run on.
	sameRate, sameCPU := runSameWork(b, evs, doctors)

	ratio := svcRate / baseRate
	line := fmt.Sprintf("checkup-events: service %d events in %.2fs = %.0f events/s; baseline %.0f events/s; ratio service/baseline = %.3f",
		n, svcElapsed.Seconds(), svcRate, baseRate, ratio)
	detail := fmt.Sprintf("checkup-events: baseline %d events in %.2fs (franz-go consumer group + pgxpool, one transaction per event)",
		n, baseElapsed.Seconds())
	cpu := fmt.Sprintf("checkup-events: CPU per event: service %s; baseline %s",
		svcCPU.perEvent(n), baseCPU.perEvent(n))
	same := fmt.Sprintf("checkup-events: same-work pipeline (every write of the service's consumer, by hand, one transaction per event) %.0f events/s; service/same-work = %.3f; same-work/baseline = %.3f; CPU per event %s",
		sameRate, svcRate/sameRate, sameRate/baseRate, sameCPU.perEvent(n))
	for _, l := range []string{line, detail, cpu, same} {
		b.Log(l)
		fmt.Println(l)
	}
	b.ReportMetric(svcRate, "events/s")
	b.ReportMetric(ratio, "ratio")
}

func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// makeEvents builds the events of test/bench/baseline.
func makeEvents(b *testing.B, n, doctors int) []benchEvent {
	b.Helper()
	evs, err := baseline.MakeEvents("BENCH", n, doctors)
	if err != nil {
		b.Fatal(err)
	}
	return evs
}

// produce writes evs to topic (auto-created by kfake with its default of 12
// partitions), and checks that they were spread over every partition.
func produce(b *testing.B, brokers []string, topic string, evs []benchEvent) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	parts, err := baseline.Produce(ctx, brokers, topic, evs)
	if err != nil {
		b.Fatal(err)
	}
	if len(evs) >= 10*testenv.KafkaPartitions && parts != testenv.KafkaPartitions {
		b.Fatalf("events landed on %d partitions of %s, want %d", parts, topic, testenv.KafkaPartitions)
	}
}

// waitAll polls count every 100ms until it reaches n and returns the time
// since start. It fails the benchmark if the count stops growing.
func waitAll(b *testing.B, what string, n int, start time.Time, count func(context.Context) (int, error)) time.Duration {
	b.Helper()
	ctx := context.Background()
	last, lastChange, lastReport := -1, time.Now(), time.Now()
	for {
		got, err := count(ctx)
		if err != nil {
			b.Fatalf("%s: count inbox: %v", what, err)
		}
		if got >= n {
			return time.Since(start)
		}
		now := time.Now()
		if got != last {
			last, lastChange = got, now
		} else if now.Sub(lastChange) > stallTimeout {
			b.Fatalf("%s: inbox stuck at %d of %d for %s", what, got, n, stallTimeout)
		}
		if now.Sub(lastReport) >= 10*time.Second {
			lastReport = now
			el := now.Sub(start).Seconds()
			fmt.Fprintf(os.Stderr, "%s: %d/%d after %.0fs (%.0f events/s)\n", what, got, n, el, float64(got)/el)
		}
		time.Sleep(pollInterval)
	}
}

// ---------------------------------------------------------------------------
// The service.

// runService runs the real checkup-events consumer (with the outbox
// forwarder on the same router, as `rfd serve` and `rfd worker` do) over
// the pre-produced topic.
func runService(b *testing.B, evs []benchEvent, doctors int) (rate float64, elapsed time.Duration, cpu cpuUse) {
	b.Helper()
	ctx := context.Background()
	n := len(evs)
	env := testenv.New(b, testenv.PostgresKafka)
	cfg := env.Config
	env.EnsureTopics(b, cfg.TopicSendNotification, cfg.TopicPoison)
	seedDoctors(b, env.DB, doctors)
	produce(b, cfg.KafkaBrokers, cfg.TopicCheckupEvents, evs)

	notifier := notify.New(env.Outbox, cfg.TopicSendNotification, cfg.PortalURL, time.Now)
	h, ok := handlers.Consumers(handlers.Deps{Config: cfg, Inbox: env.Inbox, Outbox: env.Outbox, Notifier: notifier, Now: time.Now})[config.ConsumerCheckupEvents]
	if !ok {
		b.Fatalf("no %s consumer", config.ConsumerCheckupEvents)
	}
	rt := env.NewRouter(b)
	if err := rt.AddConsumer(h); err != nil {
		b.Fatal(err)
	}

	count := func(ctx context.Context) (int, error) {
		var c int
		err := env.DB.QueryRowContext(ctx, `SELECT count(*) FROM inbox WHERE consumer = 'checkup-events'`).Scan(&c)
		return c, err
	}
	stopProfile := startProfile(b, os.Getenv("RFD_BENCH_SERVICE_CPUPROFILE"))
	dbBefore := readDBStats(b, env.DB.DB)
	b.StartTimer()
	before := readCPU()
	start := time.Now()
	testenv.Run(b, rt)
	elapsed = waitAll(b, "service", n, start, count)
	cpu = readCPU().since(before)
	b.StopTimer()
	stopProfile()
	relayed, written := forwarderProgress(b, env)
	cpu.db = readDBStats(b, env.DB.DB).since(dbBefore)
	for _, msg := range []string{
		fmt.Sprintf("checkup-events: service outbox when the inbox was complete: %d of %d send-notification commands relayed to Kafka by the forwarder", relayed, written),
		"checkup-events: service tables by rows read per event: " + tableReads(b, env.DB.DB, n),
	} {
		b.Log(msg)
		fmt.Println(msg)
	}

	// Correctness: one checkup and one notification per event.
	for _, q := range []struct {
		query string
		want  int
	}{
		{`SELECT count(*) FROM inbox WHERE consumer = 'checkup-events'`, n},
		{`SELECT count(*) FROM checkups`, n},
		{`SELECT count(*) FROM notifications`, n},
		{`SELECT count(*) FROM deliveries`, 2 * n}, // in_app + email, the results default
	} {
		var got int
		if err := env.DB.QueryRowContext(ctx, q.query).Scan(&got); err != nil {
			b.Fatalf("%s: %v", q.query, err)
		}
		if got != q.want {
			b.Fatalf("service: %s = %d, want %d", q.query, got, q.want)
		}
	}
	return float64(n) / elapsed.Seconds(), elapsed, cpu
}

// forwarderProgress reads how many outbox messages the forwarder has relayed
// (acked in its consumer group) of those written.
func forwarderProgress(b *testing.B, env *testenv.Env) (relayed, written int) {
	b.Helper()
	cfg := env.Config
	q := fmt.Sprintf(`SELECT
	(SELECT count(*) FROM %[1]q WHERE "offset" <= COALESCE((SELECT max(offset_acked) FROM %[2]q WHERE consumer_group = $1), 0)),
	(SELECT count(*) FROM %[1]q)`, "watermill_"+cfg.TopicOutbox, "watermill_offsets_"+cfg.TopicOutbox)
	if err := env.DB.DB.QueryRowContext(context.Background(), q, cfg.ConsumerGroup("forwarder")).Scan(&relayed, &written); err != nil {
		b.Logf("forwarder progress: %v", err)
	}
	return relayed, written
}

// seedDoctors inserts doctors 0..n-1 with default preferences directly (as
// the user-created consumer would have).
func seedDoctors(b *testing.B, db *bun.DB, n int) {
	b.Helper()
	if err := baseline.SeedDoctors(context.Background(), db, n); err != nil {
		b.Fatalf("seed doctors: %v", err)
	}
}

// runSameWork runs test/bench/baseline's same-work pipeline over the events, on
// a migrated service database of its own with the same doctors.
func runSameWork(b *testing.B, evs []benchEvent, doctors int) (rate float64, cpu cpuUse) {
	b.Helper()
	ctx := context.Background()
	n := len(evs)
	env := testenv.New(b, testenv.PostgresKafka)
	seedDoctors(b, env.DB, doctors)
	const topic = "checkup-events-same-work"
	produce(b, env.Config.KafkaBrokers, topic, evs)
	pool, err := baseline.NewPool(ctx, env.Config.DatabaseURL, true) // planned as the service's are
	if err != nil {
		b.Fatalf("same-work: %v", err)
	}
	defer pool.Close()
	count := func(ctx context.Context) (int, error) { return baseline.Processed(ctx, pool) }
	dbBefore := readDBStats(b, env.DB.DB)
	before := readCPU()
	start := time.Now()
	c, err := baseline.StartSameWork(ctx, env.Config.KafkaBrokers, topic, "same-work."+baseline.Consumer, pool)
	if err != nil {
		b.Fatalf("same-work: %v", err)
	}
	elapsed := waitAll(b, "same-work", n, start, count)
	cpu = readCPU().since(before)
	cpu.db = readDBStats(b, env.DB.DB).since(dbBefore)
	c.Stop()
	if err := c.Err(); err != nil {
		b.Fatalf("same-work: %v", err)
	}
	for _, q := range []struct {
		query string
		want  int
	}{
		{`SELECT count(*) FROM checkups`, n},
		{`SELECT count(*) FROM notifications`, n},
		{`SELECT count(*) FROM deliveries`, 2 * n},
		{`SELECT count(*) FROM same_work_outbox`, 2 * n},
	} {
		var got int
		if err := pool.QueryRow(ctx, q.query).Scan(&got); err != nil {
			b.Fatalf("%s: %v", q.query, err)
		}
		if got != q.want {
			b.Fatalf("same-work: %s = %d, want %d", q.query, got, q.want)
		}
	}
	return float64(n) / elapsed.Seconds(), cpu
}

// ---------------------------------------------------------------------------
// The baseline (test/bench/baseline): what a hand-written consumer does with one
// transaction per event, on its own database of the same server and its
// own kfake cluster.

func runBaseline(b *testing.B, evs []benchEvent) (rate float64, elapsed time.Duration, cpu cpuUse) {
	b.Helper()
	ctx := context.Background()
	n := len(evs)
	const topic = "checkup-events"

	pool, err := baseline.NewPool(ctx, pgtest.NewDatabase(b), false)
	if err != nil {
		b.Fatalf("baseline: %v", err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, baseline.Schema); err != nil {
		b.Fatalf("baseline: schema: %v", err)
	}
	brokers := kafkatest.Start(b, testenv.KafkaPartitions)
	produce(b, brokers, topic, evs)

	count := func(ctx context.Context) (int, error) { return baseline.Processed(ctx, pool) }
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	dbBefore := readDBStats(b, sqlDB)
	before := readCPU()
	start := time.Now()
	c, err := baseline.Start(brokers, topic, "baseline."+baseline.Consumer, pool)
	if err != nil {
		b.Fatalf("baseline: %v", err)
	}
	elapsed = waitAll(b, "baseline", n, start, count)
	cpu = readCPU().since(before)
	cpu.db = readDBStats(b, sqlDB).since(dbBefore)
	c.Stop()
	if err := c.Err(); err != nil {
		b.Fatalf("baseline: %v", err)
	}
	for _, q := range []string{`SELECT count(*) FROM checkups`, `SELECT count(*) FROM notifications`, `SELECT count(*) FROM outbox`} {
		var got int
		if err := pool.QueryRow(ctx, q).Scan(&got); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
		if got != n {
			b.Fatalf("baseline: %s = %d, want %d", q, got, n)
		}
	}
	return float64(n) / elapsed.Seconds(), elapsed, cpu
}
