// Command harness is the performance harness: in one run it measures every
// target of issue 19 ("Performance, retargeted") and prints each one's
// figure beside its bound or baseline, met or not, then writes the figures
// as JSON.
//
//	go run ./test/bench/harness -out bench-results.json
//
// Checkup events (target 1, and the SQLite throughput of target 4): it
// pushes checkup events through the real consumer, run as a subprocess
// (`rfd consume checkup-events`, with `rfd worker` relaying its outbox),
// and through the hand-written baseline of test/bench/baseline in this
// process, on the same PostgreSQL server and the same Kafka broker (kfake,
// 12 partitions, in this process on loopback TCP), then does the same on
// the embedded default (SQLite + SQL transport). On PostgreSQL + Kafka it
// also measures test/bench/baseline's same-work pipeline, the consumer's
// own reads and writes by hand, for a like-for-like ratio. Per side it
// measures the maximum rate (N events produced beforehand, events/s
// between the first and the last inbox commit) and the CPU per event of
// the processes over it, then the latency of event -> in-app notification
// committed at half that rate (events produced paced, latency = the
// notification's created_at minus the time the event was handed to the
// broker), and for the service the peak RSS of the consumer process
// (VmHWM). -combinations picks the sides: postgres+kafka, sqlite+sql or
// both (the default).
//
// Broadcast (target 3, -broadcast-doctors): a broadcast to every active
// doctor, all of them in-app only, created through `rfd api` and fanned
// out and delivered by `rfd worker` and `rfd consume send-notification`
// on PostgreSQL + Kafka, timed until every in-app delivery is delivered;
// it prints when the fan-out and the deliveries ended and each process's
// CPU.
//
// Then, as subprocesses whose printed lines it reads: BenchmarkDeliveries
// on PostgreSQL + Kafka for in_app, webhook and email (target 2,
// -deliveries), BenchmarkNotificationsList (target 5, -api-requests) and
// test/bench/servelatency on `rfd serve` (target 4, -serve-events). A
// phase given 0 is skipped and its targets print as not measured.
//
// -only-sqlite measures the embedded default alone: sqlite+sql beside its
// baseline, and rfd serve's latency.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/roles"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/outbox"
	"github.com/rfd-notify/rfd/test/bench/baseline"
)

const partitions = 12

// Targets of the issue.
const (
	targetRatio     = 1.0
	targetP99       = 50 * time.Millisecond
	targetPeakRSSMB = 100.0
)

type options struct {
	events, doctors int
	adminURL        string
	rfd             string
	out             string
	latencyFor      time.Duration
	// The sides measured: -combinations (and the older -skip-sqlite).
	postgresKafka, sqlite bool
	// broadcastDoctors is the audience of the broadcast phase, 0 for none.
	broadcastDoctors int
	// Sizes of the phases run as subprocesses, 0 for none: deliveries per
	// channel (BenchmarkDeliveries), requests per scenario and side
	// (BenchmarkNotificationsList), events POSTed to rfd serve
	// (test/bench/servelatency).
	deliveries, apiRequests, serveEvents int
	// apiNotifications is BenchmarkNotificationsList's table size, 0 for
	// its default.
	apiNotifications int
}

// Combinations the harness knows.
const (
	comboPostgresKafka = "postgres+kafka"
	comboSQLite        = "sqlite+sql"
)

func main() {
	var o options
	flag.IntVar(&o.events, "events", 20000, "events per maximum-rate measurement")
	flag.IntVar(&o.doctors, "doctors", 1000, "referring doctors the events are spread over")
	flag.StringVar(&o.adminURL, "database-url", envOr("RFD_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
		"PostgreSQL server the harness creates its databases on (dropped at the end)")
	flag.StringVar(&o.rfd, "rfd", "", "rfd binary (default: go build one from this module)")
	flag.StringVar(&o.out, "out", "bench-results.json", "file the JSON results are written to")
	flag.DurationVar(&o.latencyFor, "latency-duration", 20*time.Second, "how long events are produced at half the maximum rate")
	combinations := flag.String("combinations", comboPostgresKafka+","+comboSQLite,
		"comma-separated sides to measure: "+comboPostgresKafka+" (service, 4-row and same-work baselines) and "+comboSQLite+" (the embedded default and its baseline)")
	skipSQLite := flag.Bool("skip-sqlite", false, "measure PostgreSQL + Kafka only (same as -combinations "+comboPostgresKafka+")")
	flag.IntVar(&o.broadcastDoctors, "broadcast-doctors", 100000,
		"doctors (in-app only) a broadcast on PostgreSQL + Kafka is timed to, until every one's in-app delivery is delivered; 0 skips it")
	flag.IntVar(&o.deliveries, "deliveries", 5000,
		"deliveries per channel (in_app, webhook, email) of BenchmarkDeliveries on PostgreSQL + Kafka, run with go test; 0 skips it")
	flag.IntVar(&o.apiRequests, "api-requests", 10000,
		"requests per scenario and side of BenchmarkNotificationsList (GET /v1/notifications vs a bare pgx handler), run with go test; 0 skips it")
	flag.IntVar(&o.apiNotifications, "api-notifications", 0,
		"notifications BenchmarkNotificationsList seeds (RFD_BENCH_NOTIFICATIONS; 0: its default, 1,000,000, the size the target is for)")
	flag.IntVar(&o.serveEvents, "serve-events", 200,
		"checkup events test/bench/servelatency POSTs to rfd serve (event -> in-app notification on the embedded default); 0 skips it")
	onlySQLite := flag.Bool("only-sqlite", false,
		"the embedded default alone: sqlite+sql beside its baseline and rfd serve's latency (-combinations "+comboSQLite+" -broadcast-doctors 0 -deliveries 0 -api-requests 0)")
	flag.Parse()
	if *onlySQLite {
		*combinations, *skipSQLite = comboSQLite, false
		o.broadcastDoctors, o.deliveries, o.apiRequests = 0, 0, 0
	}
	for c := range strings.SplitSeq(*combinations, ",") {
		switch strings.TrimSpace(c) {
		case comboPostgresKafka:
			o.postgresKafka = true
		case comboSQLite:
			o.sqlite = !*skipSQLite
		case "":
		default:
			fmt.Fprintf(os.Stderr, "harness: -combinations: unknown %q (want %s, %s)\n", c, comboPostgresKafka, comboSQLite)
			os.Exit(2)
		}
	}
	if !o.postgresKafka && !o.sqlite && o.broadcastDoctors <= 0 && o.deliveries <= 0 && o.apiRequests <= 0 && o.serveEvents <= 0 {
		fmt.Fprintln(os.Stderr, "harness: nothing to measure")
		os.Exit(2)
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// Side is one pipeline's figures.
type Side struct {
	Events          int     `json:"events"`
	EventsPerSecond float64 `json:"events_per_second"`
	LatencyRate     float64 `json:"latency_rate_events_per_second"` // half the maximum
	LatencyEvents   int     `json:"latency_events"`
	P50Millis       float64 `json:"p50_ms"`
	P99Millis       float64 `json:"p99_ms"`
	PeakRSSMB       float64 `json:"peak_rss_mb,omitempty"` // the service's consumer process
	// CPU per event over the maximum-rate measurement, from the first
	// inbox commit the harness sees (within its 100 ms poll) to the last,
	// the span the rate is measured over. Go is the service's roles
	// (the consumer, and on Kafka the worker relaying the outbox) or, for
	// a hand-written pipeline, this process (which holds kfake too);
	// Harness is this process beside the service's roles (kfake and the
	// polls); PostgreSQL is the backends of the side's database (the
	// harness's polls excepted), or every server process on the host when
	// they cannot be told apart (see CPU).
	CPUGoMicros       float64 `json:"cpu_go_us_per_event,omitempty"`
	CPUPostgresMicros float64 `json:"cpu_postgres_us_per_event,omitempty"`
	CPUHarnessMicros  float64 `json:"cpu_harness_us_per_event,omitempty"`
	CPU               *CPUUse `json:"cpu_max_rate,omitempty"`
	// Statements are the side's top statements by PostgreSQL time over
	// the maximum-rate measurement (pg_stat_statements, where the server
	// loads it).
	Statements []Statement `json:"statements,omitempty"`
}

// setCPU puts the CPU used over the maximum-rate measurement of n events
// in s; the Go side is the roles', or this process's when there are none.
func (s *Side) setCPU(u CPUUse, n int) {
	per := func(sec float64) float64 { return sec * 1e6 / float64(n) }
	s.CPU = &u
	s.CPUPostgresMicros = per(u.PostgresService())
	if len(u.Roles) > 0 {
		s.CPUGoMicros, s.CPUHarnessMicros = per(u.RolesTotal()), per(u.Harness)
	} else {
		s.CPUGoMicros = per(u.Harness)
	}
}

// Combination is the service beside its baseline on one database and
// transport. On PostgreSQL + Kafka it also holds test/bench/baseline's same-work
// pipeline: the service consumer's reads and writes by hand, one
// transaction per event, so the ratio to it compares like with like (see
// docs/throughput-target.md).
type Combination struct {
	Service       Side    `json:"service"`
	Baseline      Side    `json:"baseline"`
	Ratio         float64 `json:"ratio_service_to_baseline"`
	SameWork      *Side   `json:"same_work,omitempty"`
	SameWorkRatio float64 `json:"ratio_service_to_same_work,omitempty"`
}

// Results is the JSON the harness writes.
type Results struct {
	At            time.Time    `json:"at"`
	CPUs          int          `json:"cpus"`
	Load          string       `json:"load_average_at_start"`
	PostgresKafka *Combination `json:"postgres_kafka"`
	SQLiteSQL     *Combination `json:"sqlite_sql,omitempty"`
	// Broadcast is the broadcast phase (issue 19's target 3).
	Broadcast *BroadcastResult `json:"broadcast,omitempty"`
	// The figures of the go benchmarks and of servelatency, run as
	// subprocesses (issue 19's targets 2, 5 and 4).
	Deliveries   *DeliveriesResult   `json:"deliveries,omitempty"`
	APIList      *APIListResult      `json:"api_list,omitempty"`
	ServeLatency *ServeLatencyResult `json:"serve_latency,omitempty"`
	// IssueTargets is every target of issue 19 with this run's figure,
	// and IssueSummary the lines the harness prints for them.
	IssueTargets []Target `json:"issue19_targets"`
	IssueSummary string   `json:"issue19_summary"`
	LoadAtEnd    string   `json:"load_average_at_end"`
	// Errors are the phases that failed, by phase.
	Errors  map[string]string `json:"errors,omitempty"`
	Targets struct {
		Ratio     float64 `json:"ratio_at_least"`
		P99Millis float64 `json:"p99_ms_below"`
		PeakRSSMB float64 `json:"peak_rss_mb_below"`
		RatioMet  bool    `json:"ratio_met"`
		P99Met    bool    `json:"p99_met"`
		RSSMet    bool    `json:"rss_met"`
	} `json:"targets"`
	Summary string `json:"summary"`
}

func run(ctx context.Context, o options) error {
	res := Results{At: time.Now().UTC(), CPUs: numCPU(), Load: loadAverage()}
	bin := o.rfd
	if bin == "" {
		var err error
		if bin, err = buildRFD(); err != nil {
			return err
		}
	}
	if o.postgresKafka {
		cluster, err := newKafka()
		if err != nil {
			return err
		}
		pk, err := postgresKafka(ctx, o, bin, cluster.ListenAddrs())
		cluster.Close()
		if err != nil {
			return fmt.Errorf("postgres+kafka: %w", err)
		}
		res.PostgresKafka = pk
	}
	if o.sqlite {
		sq, err := sqliteSQL(ctx, o, bin)
		if err != nil {
			return fmt.Errorf("sqlite+sql: %w", err)
		}
		res.SQLiteSQL = sq
	}
	// A later phase that fails is reported with the others' figures.
	failed := func(phase string, err error) {
		logf("%s failed: %v", phase, err)
		if res.Errors == nil {
			res.Errors = map[string]string{}
		}
		res.Errors[phase] = err.Error()
	}
	if o.broadcastDoctors > 0 {
		if b, err := measureBroadcast(ctx, o, bin); err != nil {
			failed(phaseBroadcast, err)
		} else {
			res.Broadcast = b
		}
	}
	if o.deliveries > 0 {
		if d, err := measureDeliveries(ctx, o); err != nil {
			failed(phaseDeliveries, err)
		} else {
			res.Deliveries = d
		}
	}
	if o.apiRequests > 0 {
		if a, err := measureAPIList(ctx, o); err != nil {
			failed(phaseAPIList, err)
		} else {
			res.APIList = a
		}
	}
	if o.serveEvents > 0 {
		if sl, err := measureServeLatency(ctx, o, bin); err != nil {
			failed(phaseServeLatency, err)
		} else {
			res.ServeLatency = sl
		}
	}
	res.LoadAtEnd = loadAverage()

	res.Targets.Ratio, res.Targets.P99Millis, res.Targets.PeakRSSMB = targetRatio, float64(targetP99.Milliseconds()), targetPeakRSSMB
	if pk := res.PostgresKafka; pk != nil {
		res.Targets.RatioMet = pk.Ratio >= targetRatio
		res.Targets.P99Met = pk.Service.P99Millis < float64(targetP99.Milliseconds())
		res.Targets.RSSMet = pk.Service.PeakRSSMB > 0 && pk.Service.PeakRSSMB < targetPeakRSSMB
	}
	res.Summary = summary(res)
	res.IssueTargets = issueTargets(res, o)
	res.IssueSummary = targetsText(res, res.IssueTargets)
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Println(res.Summary)
	if b := res.Broadcast; b != nil {
		fmt.Println(b.summary())
		fmt.Println(b.split())
		fmt.Println("broadcast: " + b.CPU.String())
	}
	fmt.Println(res.IssueSummary)
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d phases failed: %s", len(res.Errors), strings.Join(sortedKeys(res.Errors), ", "))
	}
	return nil
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// newKafka starts a Kafka broker (kfake) in this process on loopback TCP,
// whose topics get partitions partitions.
func newKafka() (*kfake.Cluster, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.DefaultNumPartitions(partitions),
		kfake.AllowAutoTopicCreation(), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("kfake: %w", err)
	}
	return c, nil
}

func summary(r Results) string {
	s := "harness"
	if r.PostgresKafka == nil && r.SQLiteSQL == nil {
		s += " (no checkup-events side)"
	}
	if pk := r.PostgresKafka; pk != nil {
		s += postgresKafkaSummary(r, pk)
	}
	if sq := r.SQLiteSQL; sq != nil {
		if r.PostgresKafka != nil {
			s += ";"
		}
		s += fmt.Sprintf(" sqlite+sql: service %.0f events/s vs baseline %.0f (ratio %.3f), p50 %.1f ms p99 %.1f ms at %.0f events/s, peak RSS %.1f MB",
			sq.Service.EventsPerSecond, sq.Baseline.EventsPerSecond, sq.Ratio, sq.Service.P50Millis, sq.Service.P99Millis, sq.Service.LatencyRate, sq.Service.PeakRSSMB)
	}
	return s + fmt.Sprintf(" [%d CPUs, load %s]", r.CPUs, r.Load)
}

func postgresKafkaSummary(r Results, pk *Combination) string {
	s := fmt.Sprintf(" postgres+kafka: service %.0f events/s vs baseline %.0f (ratio %.3f, target %.1f %s); event->in-app p50 %.1f ms p99 %.1f ms at %.0f events/s (baseline p99 %.1f ms; target p99 < %d ms %s); peak RSS %.1f MB (target < %.0f MB %s)",
		pk.Service.EventsPerSecond, pk.Baseline.EventsPerSecond, pk.Ratio, targetRatio, met(r.Targets.RatioMet),
		pk.Service.P50Millis, pk.Service.P99Millis, pk.Service.LatencyRate, pk.Baseline.P99Millis, targetP99.Milliseconds(), met(r.Targets.P99Met),
		pk.Service.PeakRSSMB, targetPeakRSSMB, met(r.Targets.RSSMet))
	if sw := pk.SameWork; sw != nil {
		s += fmt.Sprintf("; same-work pipeline %.0f events/s (service/same-work %.3f), p50 %.1f ms p99 %.1f ms at %.0f events/s",
			sw.EventsPerSecond, pk.SameWorkRatio, sw.P50Millis, sw.P99Millis, sw.LatencyRate)
	}
	return s
}

// --- PostgreSQL + Kafka ----------------------------------------------------------

func postgresKafka(ctx context.Context, o options, bin string, brokers []string) (*Combination, error) {
	svcURL, dropSvc, err := createDatabase(ctx, o.adminURL)
	if err != nil {
		return nil, err
	}
	defer dropSvc()
	baseURL, dropBase, err := createDatabase(ctx, o.adminURL)
	if err != nil {
		return nil, err
	}
	defer dropBase()
	sameURL, dropSame, err := createDatabase(ctx, o.adminURL)
	if err != nil {
		return nil, err
	}
	defer dropSame()

	env := append(os.Environ(), "RFD_DATABASE_URL="+svcURL, "RFD_TRANSPORT=kafka", "RFD_KAFKA_BROKERS="+strings.Join(brokers, ","), "RFD_LOG_LEVEL=warn")
	svc, err := measureService(ctx, "postgres+kafka service", o, bin, env, svcURL, kafkaFeed(brokers, "checkup-events"))
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	base, err := measurePGBaseline(ctx, o, baseURL, brokers)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	same, err := measurePGSameWork(ctx, o, bin, sameURL, brokers)
	if err != nil {
		return nil, fmt.Errorf("same-work: %w", err)
	}
	return &Combination{
		Service: svc, Baseline: base, Ratio: svc.EventsPerSecond / base.EventsPerSecond,
		SameWork: &same, SameWorkRatio: svc.EventsPerSecond / same.EventsPerSecond,
	}, nil
}

// feed puts events where a pipeline reads them; pace > 0 spaces them out
// at that many per second and returns when each was handed over.
type feed func(ctx context.Context, evs []baseline.Event, pace float64) (map[string]time.Time, error)

func kafkaFeed(brokers []string, topic string) feed {
	return func(ctx context.Context, evs []baseline.Event, pace float64) (map[string]time.Time, error) {
		if pace <= 0 {
			parts, err := baseline.Produce(ctx, brokers, topic, evs)
			if err == nil && len(evs) >= 10*partitions && parts != partitions {
				err = fmt.Errorf("events landed on %d partitions of %s, want %d", parts, topic, partitions)
			}
			return nil, err
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0))
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		sent := make(map[string]time.Time, len(evs))
		errs := make(chan error, 1)
		start := time.Now()
		for i, e := range evs {
			if d := time.Until(start.Add(time.Duration(float64(i) / pace * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
			sent[e.ID] = time.Now()
			cl.Produce(ctx, e.Record(topic), func(_ *kgo.Record, err error) {
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			return nil, err
		}
		select {
		case err := <-errs:
			return nil, err
		default:
		}
		return sent, nil
	}
}

// measureService measures the service's consumer process: maximum rate on
// a full topic, then latency at half of it, and its peak RSS.
func measureService(ctx context.Context, label string, o options, bin string, env []string, dbURL string, put feed) (Side, error) {
	side := Side{Events: o.events}
	db, err := serviceDatabase(ctx, o, bin, env, dbURL)
	if err != nil {
		return side, err
	}
	defer db.Close()
	evs, err := baseline.MakeEvents("SVC", o.events, o.doctors)
	if err != nil {
		return side, err
	}
	logf("%s: producing %d events", label, len(evs))
	if _, err := put(ctx, evs, 0); err != nil {
		return side, err
	}
	consumer, err := startRole(bin, env, "consume", "checkup-events")
	if err != nil {
		return side, err
	}
	defer consumer.stop()
	roles := map[string]*role{"consume checkup-events": consumer}
	if isKafka(env) {
		worker, err := startRole(bin, env, "worker")
		if err != nil {
			return side, err
		}
		defer worker.stop()
		roles["worker"] = worker
	}
	var pgDB *bun.DB
	if strings.HasPrefix(dbURL, "postgres") {
		pgDB = db
	}
	cpu := cpuWindow{roles: roles, db: pgDB}
	const inbox = "checkup-events"
	stmts, why := statementSnapshot(ctx, pgDB)
	if side.EventsPerSecond, err = waitRate(ctx, db, inbox, len(evs), label, cpu.first); err != nil {
		return side, fmt.Errorf("%w\n%s", err, consumer.tail())
	}
	cpu.set(&side, len(evs))
	if stmts != nil {
		after, _ := statementSnapshot(ctx, pgDB)
		side.Statements = statementsBetween(stmts, after, len(evs), 12)
		logStatements(label, side.Statements)
	}
	statementsReport(label, why)
	logf("%s: CPU per event: Go %.0f µs + PostgreSQL %.0f µs (harness: kfake and polls %.0f µs)", label, side.CPUGoMicros, side.CPUPostgresMicros, side.CPUHarnessMicros)
	side.LatencyRate = side.EventsPerSecond / 2
	lat, err := baseline.MakeEvents("SVCLAT", latencyCount(side.LatencyRate, o.latencyFor), o.doctors)
	if err != nil {
		return side, err
	}
	side.LatencyEvents = len(lat)
	logf("%s: %.0f events/s; latency at %.0f events/s with %d events", label, side.EventsPerSecond, side.LatencyRate, len(lat))
	sent, err := put(ctx, lat, side.LatencyRate)
	if err != nil {
		return side, err
	}
	if side.P50Millis, side.P99Millis, err = latencies(ctx, db, inbox, len(evs)+len(lat), sent); err != nil {
		return side, fmt.Errorf("%w\n%s", err, consumer.tail())
	}
	if side.PeakRSSMB, err = consumer.peakRSSMB(); err != nil {
		return side, err
	}
	logf("%s: p50 %.1f ms p99 %.1f ms, peak RSS %.1f MB", label, side.P50Millis, side.P99Millis, side.PeakRSSMB)
	return side, nil
}

// serviceDatabase migrates the service's schema onto dbURL with `rfd
// migrate up` (env names the database) and seeds the events' doctors.
func serviceDatabase(ctx context.Context, o options, bin string, env []string, dbURL string) (*bun.DB, error) {
	if out, err := runCmd(bin, env, "migrate", "up"); err != nil {
		return nil, fmt.Errorf("migrate: %v\n%s", err, out)
	}
	db, err := store.Open(ctx, harnessURL(dbURL))
	if err != nil {
		return nil, err
	}
	if err := baseline.SeedDoctors(ctx, db, o.doctors); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func isKafka(env []string) bool { return slices.Contains(env, "RFD_TRANSPORT=kafka") }

// latencyCount is how many events o.latencyFor holds at rate, at least 200.
func latencyCount(rate float64, d time.Duration) int {
	return max(200, int(rate*d.Seconds()))
}

func measurePGBaseline(ctx context.Context, o options, dbURL string, brokers []string) (Side, error) {
	pool, err := baseline.NewPool(ctx, dbURL, false)
	if err != nil {
		return Side{}, err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, baseline.Schema); err != nil {
		return Side{}, fmt.Errorf("schema: %w", err)
	}
	db, err := store.Open(ctx, harnessURL(dbURL))
	if err != nil {
		return Side{}, err
	}
	defer db.Close()
	const topic = "baseline-checkup-events"
	return measurePipeline(ctx, o, "postgres+kafka baseline", "BASE", db, kafkaFeed(brokers, topic), func() (*baseline.Pipeline, error) {
		return baseline.Start(brokers, topic, "baseline."+baseline.Consumer, pool)
	})
}

// measurePGSameWork measures the same-work pipeline on a migrated service
// database of its own, with the service's doctors, planned as the
// service's statements are.
func measurePGSameWork(ctx context.Context, o options, bin, dbURL string, brokers []string) (Side, error) {
	db, err := serviceDatabase(ctx, o, bin, append(os.Environ(), "RFD_DATABASE_URL="+dbURL), dbURL)
	if err != nil {
		return Side{}, err
	}
	defer db.Close()
	pool, err := baseline.NewPool(ctx, dbURL, true)
	if err != nil {
		return Side{}, err
	}
	defer pool.Close()
	const topic = "same-work-checkup-events"
	return measurePipeline(ctx, o, "postgres+kafka same-work", "SAME", db, kafkaFeed(brokers, topic), func() (*baseline.Pipeline, error) {
		return baseline.StartSameWork(ctx, brokers, topic, "same-work."+baseline.Consumer, pool)
	})
}

// measurePipeline measures a hand-written pipeline of test/bench/baseline as
// measureService does the service: the maximum rate on a full topic, then
// p50/p99 at half of it. Its inbox rows are in db.
func measurePipeline(ctx context.Context, o options, label, tag string, db *bun.DB, put feed, start func() (*baseline.Pipeline, error)) (Side, error) {
	side := Side{Events: o.events}
	evs, err := baseline.MakeEvents(tag, o.events, o.doctors)
	if err != nil {
		return side, err
	}
	logf("%s: producing %d events", label, len(evs))
	if _, err := put(ctx, evs, 0); err != nil {
		return side, err
	}
	p, err := start()
	if err != nil {
		return side, err
	}
	defer p.Stop()
	cpu := cpuWindow{db: db}
	inbox := baseline.Consumer
	stmts, _ := statementSnapshot(ctx, db)
	if side.EventsPerSecond, err = waitRate(ctx, db, inbox, len(evs), label, cpu.first); err != nil {
		return side, errors.Join(err, p.Err())
	}
	cpu.set(&side, len(evs))
	if stmts != nil {
		after, _ := statementSnapshot(ctx, db)
		side.Statements = statementsBetween(stmts, after, len(evs), 12)
		logStatements(label, side.Statements)
	}
	logf("%s: CPU per event: Go (pipeline and kfake) %.0f µs + PostgreSQL %.0f µs", label, side.CPUGoMicros, side.CPUPostgresMicros)
	side.LatencyRate = side.EventsPerSecond / 2
	lat, err := baseline.MakeEvents(tag+"LAT", latencyCount(side.LatencyRate, o.latencyFor), o.doctors)
	if err != nil {
		return side, err
	}
	side.LatencyEvents = len(lat)
	logf("%s: %.0f events/s; latency at %.0f events/s with %d events", label, side.EventsPerSecond, side.LatencyRate, len(lat))
	sent, err := put(ctx, lat, side.LatencyRate)
	if err != nil {
		return side, err
	}
	if side.P50Millis, side.P99Millis, err = latencies(ctx, db, inbox, len(evs)+len(lat), sent); err != nil {
		return side, errors.Join(err, p.Err())
	}
	logf("%s: p50 %.1f ms p99 %.1f ms", label, side.P50Millis, side.P99Millis)
	return side, p.Err()
}

// --- measuring ---------------------------------------------------------------------

// inboxSpan is a consumer's inbox rows: how many, the first and the last
// commit.
type inboxSpan struct {
	N     int          `bun:"n"`
	First bun.NullTime `bun:"first"`
	Last  bun.NullTime `bun:"last"`
}

func readInbox(ctx context.Context, db *bun.DB, consumer string) (inboxSpan, error) {
	var s inboxSpan
	err := db.NewRaw(`SELECT count(*) AS n, min(processed_at) AS first, max(processed_at) AS last FROM inbox WHERE consumer = ?`, consumer).Scan(ctx, &s)
	return s, err
}

// waitRate waits until consumer's inbox holds n rows and returns n over the
// time between the first and the last inbox commit. A count that stops
// growing for two minutes fails. first, if not nil, is called once with
// the count the first time it is not zero.
func waitRate(ctx context.Context, db *bun.DB, consumer string, n int, what string, first func(int)) (float64, error) {
	last, lastChange, lastLog := -1, time.Now(), time.Now()
	for {
		s, err := readInbox(ctx, db, consumer)
		if err != nil {
			return 0, fmt.Errorf("count inbox: %w", err)
		}
		if first != nil && s.N > 0 {
			first(s.N)
			first = nil
		}
		if s.N >= n {
			span := s.Last.Sub(s.First.Time)
			if span <= 0 {
				return 0, fmt.Errorf("%s: inbox times do not span (first %s, last %s)", what, s.First, s.Last)
			}
			return float64(n-1) / span.Seconds(), nil
		}
		if s.N != last {
			last, lastChange = s.N, time.Now()
		} else if time.Since(lastChange) > 2*time.Minute {
			return 0, fmt.Errorf("%s: inbox stuck at %d of %d", what, s.N, n)
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			logf("%s: %d/%d", what, s.N, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// latencies waits for the latency events and returns p50 and p99 of
// notification created_at minus the time each event was handed over.
func latencies(ctx context.Context, db *bun.DB, consumer string, total int, sent map[string]time.Time) (p50, p99 float64, err error) {
	if _, err := waitRate(ctx, db, consumer, total, "latency", nil); err != nil {
		return 0, 0, err
	}
	var rows []struct {
		ID        string    `bun:"source_event_id"`
		CreatedAt time.Time `bun:"created_at"`
	}
	if err := db.NewRaw(`SELECT source_event_id, created_at FROM notifications`).Scan(ctx, &rows); err != nil {
		return 0, 0, err
	}
	var ms []float64
	for _, r := range rows {
		if at, ok := sent[r.ID]; ok {
			ms = append(ms, float64(r.CreatedAt.Sub(at).Microseconds())/1000)
		}
	}
	if len(ms) < len(sent) {
		return 0, 0, fmt.Errorf("latency: %d of %d events have their notification", len(ms), len(sent))
	}
	slices.Sort(ms)
	pct := func(p float64) float64 { return ms[min(len(ms)-1, int(p*float64(len(ms))))] }
	return pct(0.50), pct(0.99), nil
}

// --- processes -------------------------------------------------------------------

type role struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	// admin is the address of its /healthz, /readyz and /metrics.
	admin string
}

func startRole(bin string, env []string, args ...string) (*role, error) {
	f, err := os.CreateTemp("", "rfd-harness-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	admin := "127.0.0.1:" + strconv.Itoa(20000+rand.IntN(20000))
	cmd.Env = append(slices.Clone(env), "RFD_ADMIN_ADDR="+admin)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start rfd %s: %w", strings.Join(args, " "), err)
	}
	r := &role{cmd: cmd, log: f.Name(), done: make(chan struct{}), admin: admin}
	go func() { _ = cmd.Wait(); f.Close(); close(r.done) }()
	return r, nil
}

// peakRSSMB reads VmHWM, the process's peak resident set, from /proc.
func (r *role) peakRSSMB() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read VmHWM: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", rest, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

func (r *role) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	_ = os.Remove(r.log)
}

// waitReady waits until the role answers /readyz with 200.
func (r *role) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.admin+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.done:
			return fmt.Errorf("rfd %s exited:\n%s", strings.Join(r.cmd.Args[1:], " "), r.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rfd %s not ready after %s:\n%s", strings.Join(r.cmd.Args[1:], " "), timeout, r.tail())
		}
	}
}

func (r *role) tail() string {
	b, _ := os.ReadFile(r.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

func runCmd(bin string, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// buildRFD builds the rfd binary of this module into a temporary directory.
func buildRFD() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "rfd-harness-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "rfd")
	logf("building %s", bin)
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	return bin, nil
}

// --- databases ---------------------------------------------------------------------

// createDatabase creates an empty database on the server of adminURL and
// returns its URL and the function that drops it.
func createDatabase(ctx context.Context, adminURL string) (string, func(), error) {
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("rfd_harness_%d_%06x", time.Now().Unix(), rand.Uint32()&0xffffff)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create database (is PostgreSQL running? set -database-url): %w", err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		admin.Close()
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			logf("drop %s: %v", name, err)
		}
	}
	return u.String(), drop, nil
}

func numCPU() int { return runtime.NumCPU() }

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// --- SQLite + SQL transport --------------------------------------------------------

func sqliteSQL(ctx context.Context, o options, bin string) (*Combination, error) {
	dir, err := os.MkdirTemp("", "rfd-harness-sqlite-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	svcURL := "sqlite://" + filepath.Join(dir, "service.db")
	env := append(os.Environ(), "RFD_DATABASE_URL="+svcURL, "RFD_TRANSPORT=sql", "RFD_LOG_LEVEL=warn")
	if out, err := runCmd(bin, env, "migrate", "up"); err != nil {
		return nil, fmt.Errorf("migrate: %v\n%s", err, out)
	}
	put, closeFeed, err := sqlTopicFeed(ctx, svcURL, "checkup-events")
	if err != nil {
		return nil, err
	}
	defer closeFeed()
	svc, err := measureService(ctx, "sqlite+sql service", o, bin, env, svcURL, put)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	base, err := measureSQLiteBaseline(ctx, o, "sqlite://"+filepath.Join(dir, "baseline.db"))
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	// PostgreSQL has no part in these sides: what its processes used was
	// other work on the host.
	for _, sd := range []*Side{&svc, &base} {
		sd.CPUPostgresMicros = 0
		if sd.CPU != nil {
			sd.CPU.Postgres = 0
		}
	}
	return &Combination{Service: svc, Baseline: base, Ratio: svc.EventsPerSecond / base.EventsPerSecond}, nil
}

// sqlTopicFeed publishes events to topic's table on the SQL transport, as
// another process publishing to the embedded service's database would.
func sqlTopicFeed(ctx context.Context, dbURL, topic string) (feed, func(), error) {
	cfg, err := config.Load(nil)
	if err != nil {
		return nil, nil, err
	}
	cfg.DatabaseURL, cfg.Transport = dbURL, config.TransportSQL
	db, err := store.Open(ctx, dbURL)
	if err != nil {
		return nil, nil, err
	}
	logger := slog.New(slog.DiscardHandler)
	ps, err := roles.NewSQLPubSub(db, cfg, logger)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	if err := ps.InitializeTopic(ctx, topic); err != nil {
		db.Close()
		return nil, nil, err
	}
	pub, err := ps.Publisher()
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	msg := func(e baseline.Event) *message.Message {
		m := message.NewMessage(e.ID, e.Payload)
		for _, h := range e.Headers {
			m.Metadata.Set(h.Key, string(h.Value))
		}
		m.Metadata.Set(outbox.PartitionKeyKey, e.Key)
		return m
	}
	put := func(ctx context.Context, evs []baseline.Event, pace float64) (map[string]time.Time, error) {
		if pace <= 0 {
			for lo := 0; lo < len(evs); lo += 500 {
				batch := make([]*message.Message, 0, 500)
				for _, e := range evs[lo:min(lo+500, len(evs))] {
					batch = append(batch, msg(e))
				}
				if err := pub.Publish(topic, batch...); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}
		sent := make(map[string]time.Time, len(evs))
		start := time.Now()
		for i, e := range evs {
			if d := time.Until(start.Add(time.Duration(float64(i) / pace * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
			sent[e.ID] = time.Now()
			if err := pub.Publish(topic, msg(e)); err != nil {
				return nil, err
			}
		}
		return sent, nil
	}
	return put, func() { _ = pub.Close(); db.Close() }, nil
}

func measureSQLiteBaseline(ctx context.Context, o options, dbURL string) (Side, error) {
	side := Side{Events: o.events}
	db, err := store.Open(ctx, dbURL)
	if err != nil {
		return side, err
	}
	defer db.Close()
	for _, q := range baseline.SQLiteSchema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return side, fmt.Errorf("schema: %w", err)
		}
	}
	put := func(ctx context.Context, evs []baseline.Event, pace float64) (map[string]time.Time, error) {
		if pace <= 0 {
			return nil, baseline.InsertSQLiteEvents(ctx, db, evs)
		}
		sent := make(map[string]time.Time, len(evs))
		start := time.Now()
		for i, e := range evs {
			if d := time.Until(start.Add(time.Duration(float64(i) / pace * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
			sent[e.ID] = time.Now()
			if err := baseline.InsertSQLiteEvents(ctx, db, []baseline.Event{e}); err != nil {
				return nil, err
			}
		}
		return sent, nil
	}
	evs, err := baseline.MakeEvents("BASE", o.events, o.doctors)
	if err != nil {
		return side, err
	}
	if _, err := put(ctx, evs, 0); err != nil {
		return side, err
	}
	// The service's default poll interval of an idle SQL subscriber.
	p := baseline.StartSQLite(db, 100*time.Millisecond)
	defer p.Stop()
	var cpu cpuWindow
	if side.EventsPerSecond, err = waitRate(ctx, db, baseline.Consumer, len(evs), "sqlite baseline", cpu.first); err != nil {
		return side, errors.Join(err, p.Err())
	}
	cpu.set(&side, len(evs))
	side.LatencyRate = side.EventsPerSecond / 2
	lat, err := baseline.MakeEvents("BASELAT", latencyCount(side.LatencyRate, o.latencyFor), o.doctors)
	if err != nil {
		return side, err
	}
	side.LatencyEvents = len(lat)
	logf("sqlite baseline: %.0f events/s; latency at %.0f events/s with %d events", side.EventsPerSecond, side.LatencyRate, len(lat))
	sent, err := put(ctx, lat, side.LatencyRate)
	if err != nil {
		return side, err
	}
	if side.P50Millis, side.P99Millis, err = latencies(ctx, db, baseline.Consumer, len(evs)+len(lat), sent); err != nil {
		return side, errors.Join(err, p.Err())
	}
	logf("sqlite baseline: p50 %.1f ms p99 %.1f ms", side.P50Millis, side.P99Millis)
	return side, p.Err()
}
