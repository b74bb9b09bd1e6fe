package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/config"
	"github.com/rfd-notify/rfd/domain"
	"github.com/rfd-notify/rfd/events"
	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/pgtest"
	"github.com/rfd-notify/rfd/internal/testenv"
	"github.com/rfd-notify/rfd/kafkapubsub/kafkatest"
	"github.com/rfd-notify/rfd/notify"
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
type benchEvent struct {
	id      string // ce_id, the message id the inbox records
	key     string // the checkup id: the partition key
	payload []byte
	headers []kgo.RecordHeader
}

// BenchmarkCheckupEvents measures the hand-written baseline, then the
// service, on the same events; see the package documentation.
func BenchmarkCheckupEvents(b *testing.B) {
	b.StopTimer()
	n := envInt(b, "RFD_BENCH_EVENTS", defaultEvents)
	doctors := min(envInt(b, "RFD_BENCH_DOCTORS", defaultDoctors), n)
	evs := makeEvents(b, n, doctors)

	baseRate, baseElapsed, baseCPU := runBaseline(b, evs)
	svcRate, svcElapsed, svcCPU := runService(b, evs, doctors)

	ratio := svcRate / baseRate
	line := fmt.Sprintf("checkup-events: service %d events in %.2fs = %.0f events/s; baseline %.0f events/s; ratio service/baseline = %.3f",
		n, svcElapsed.Seconds(), svcRate, baseRate, ratio)
	detail := fmt.Sprintf("checkup-events: baseline %d events in %.2fs (franz-go consumer group + pgxpool, one transaction per event)",
		n, baseElapsed.Seconds())
	cpu := fmt.Sprintf("checkup-events: CPU per event: service %s; baseline %s",
		svcCPU.perEvent(n), baseCPU.perEvent(n))
	for _, l := range []string{line, detail, cpu} {
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

func doctorExternalID(i int) string { return fmt.Sprintf("bench-doc-%05d", i) }

// makeEvents builds n result_available events (status final), each with
// a distinct checkup id and one referring doctor out of doctors, encoded and
// validated by the contract's own encoder.
func makeEvents(b *testing.B, n, doctors int) []benchEvent {
	b.Helper()
	occurred := time.Date(2026, 11, 25, 2, 30, 0, 0, time.UTC)
	evs := make([]benchEvent, n)
	for i := range evs {
		checkup := fmt.Sprintf("CHK-BENCH-%07d", i)
		id := fmt.Sprintf("ce-bench-%07d", i)
		ev := events.CheckupEvent{
			EventType: events.CheckupResultAvailable,
			CheckupID: checkup,
			OrderID:   "ORD-" + checkup,
			Patient:   events.Patient{Ref: fmt.Sprintf("PT-%07d", i), DisplayName: "Somchai Jaidee", BirthYear: 1970},
			ReferringDoctors: []events.ReferringDoctor{
				{ExternalUserID: doctorExternalID(i % doctors), Role: events.RolePrimary},
			},
			OccurredAt: occurred,
			Result: &events.Result{
				Version: 1,
				Status:  events.ResultFinal,
				Tests:   []events.Test{{Code: "K", Name: "Potassium", Value: "6.9", Unit: "mmol/L", Flag: events.FlagCriticalHigh}},
			},
		}
		payload, err := ev.Encode()
		if err != nil {
			b.Fatalf("encode event %d: %v", i, err)
		}
		md := events.CloudEventMetadata(id, events.TypeCheckupEvent, "bench-producer", occurred)
		keys := make([]string, 0, len(md))
		for k := range md {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		hs := make([]kgo.RecordHeader, 0, len(keys))
		for _, k := range keys {
			hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(md[k])})
		}
		evs[i] = benchEvent{id: id, key: checkup, payload: payload, headers: hs}
	}
	return evs
}

// produce writes evs to topic (auto-created by kfake with its default of 12
// partitions) with a batching franz-go producer, and checks that they were
// spread over every partition.
func produce(b *testing.B, brokers []string, topic string, evs []benchEvent) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.AllowAutoTopicCreation(),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(20000),
	)
	if err != nil {
		b.Fatalf("producer: %v", err)
	}
	defer cl.Close()

	var (
		mu       sync.Mutex
		firstErr error
		parts    = map[int32]bool{}
		wg       sync.WaitGroup
	)
	for _, e := range evs {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(e.key), Value: e.payload, Headers: e.headers}, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			parts[r.Partition] = true
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatalf("producer flush: %v", err)
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("produce to %s: %v", topic, firstErr)
	}
	if len(evs) >= 10*testenv.KafkaPartitions && len(parts) != testenv.KafkaPartitions {
		b.Fatalf("events landed on %d partitions of %s, want %d", len(parts), topic, testenv.KafkaPartitions)
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
	ctx := context.Background()
	now := time.Now().UTC()
	docs := make([]domain.Doctor, n)
	prefs := make([]domain.PreferencesRow, n)
	for i := range docs {
		ext := doctorExternalID(i)
		id := handlers.DoctorID(ext)
		docs[i] = domain.Doctor{
			ID: id, ExternalUserID: ext, Name: "Dr. " + ext, LicenceNumber: "MD-" + ext, Specialty: "Cardiology",
			Clinic: "Sukhumvit Heart Clinic", Email: ext + "@clinic.example", Phone: "+66812345678",
			Locale: "en", TimeZone: "Asia/Bangkok", Active: true, ProfileVersion: now, CreatedAt: now, UpdatedAt: now,
		}
		prefs[i] = domain.DefaultPreferences().Row(id, now)
	}
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for lo := 0; lo < n; lo += 500 {
			hi := min(lo+500, n)
			d, p := docs[lo:hi], prefs[lo:hi]
			if _, err := tx.NewInsert().Model(&d).Exec(ctx); err != nil {
				return fmt.Errorf("doctors: %w", err)
			}
			if _, err := tx.NewInsert().Model(&p).Exec(ctx); err != nil {
				return fmt.Errorf("preferences: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("seed doctors: %v", err)
	}
}

// ---------------------------------------------------------------------------
// The baseline: what a hand-written consumer does with one transaction per
// event, on its own database of the same server and its own kfake cluster.

const baselineSchema = `
CREATE TABLE inbox (
	consumer     TEXT NOT NULL,
	message_id   TEXT NOT NULL,
	processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
	PRIMARY KEY (consumer, message_id)
);
CREATE TABLE checkups (
	id            TEXT PRIMARY KEY,
	order_id      TEXT NOT NULL DEFAULT '',
	patient_ref   TEXT NOT NULL,
	status        TEXT NOT NULL,
	last_event_at TIMESTAMPTZ NOT NULL,
	created_at    TIMESTAMPTZ NOT NULL,
	updated_at    TIMESTAMPTZ NOT NULL
);
-- Shaped like watermill-sql's PostgreSQL topic table.
CREATE TABLE outbox (
	"offset"       BIGSERIAL,
	"uuid"         VARCHAR(36) NOT NULL,
	"created_at"   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
	"payload"      JSON DEFAULT NULL,
	"metadata"     JSON DEFAULT NULL,
	"transaction_id" xid8 NOT NULL,
	PRIMARY KEY ("transaction_id", "offset")
);`

const baselineConsumer = "checkup-events"

func runBaseline(b *testing.B, evs []benchEvent) (rate float64, elapsed time.Duration, cpu cpuUse) {
	b.Helper()
	ctx := context.Background()
	n := len(evs)
	const topic = "checkup-events"

	pcfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	pcfg.MaxConns = 20 // the service's pool size (store.Open)
	// The baseline prepares each of its few statements once per connection
	// whatever the URL says (RFD_TEST_DATABASE_URL may carry pgx options
	// meant for the service).
	pcfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		b.Fatalf("baseline: pool: %v", err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, baselineSchema); err != nil {
		b.Fatalf("baseline: schema: %v", err)
	}
	brokers := kafkatest.Start(b, testenv.KafkaPartitions)
	produce(b, brokers, topic, evs)

	count := func(ctx context.Context) (int, error) {
		var c int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM inbox WHERE consumer = $1`, baselineConsumer).Scan(&c)
		return c, err
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	dbBefore := readDBStats(b, sqlDB)
	before := readCPU()
	start := time.Now()
	c, err := startBaseline(brokers, topic, pool)
	if err != nil {
		b.Fatalf("baseline: %v", err)
	}
	elapsed = waitAll(b, "baseline", n, start, count)
	cpu = readCPU().since(before)
	cpu.db = readDBStats(b, sqlDB).since(dbBefore)
	c.stop()
	if err := c.err(); err != nil {
		b.Fatalf("baseline: %v", err)
	}
	for _, q := range []string{`SELECT count(*) FROM checkups`, `SELECT count(*) FROM outbox`} {
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

// baseline is a franz-go group consumer processing each partition in its
// own goroutine, in order, one transaction per record; a record's offset is
// marked once its transaction commits and marks are committed every second.
type baseline struct {
	cl      *kgo.Client
	pool    *pgxpool.Pool
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	workers sync.WaitGroup
	failed  atomic.Pointer[error]
}

func startBaseline(brokers []string, topic string, pool *pgxpool.Pool) (*baseline, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup("baseline."+baselineConsumer),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			_ = cl.CommitMarkedOffsets(ctx)
		}),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &baseline{cl: cl, pool: pool, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go c.poll()
	return c, nil
}

func (c *baseline) poll() {
	defer close(c.done)
	parts := map[int32]chan []*kgo.Record{}
	defer func() {
		for _, ch := range parts {
			close(ch)
		}
		c.workers.Wait()
	}()
	for {
		fetches := c.cl.PollFetches(c.ctx)
		if fetches.IsClientClosed() || c.ctx.Err() != nil {
			return
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.fail(fmt.Errorf("fetch %s/%d: %w", t, p, err))
			}
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			ch, ok := parts[p.Partition]
			if !ok {
				ch = make(chan []*kgo.Record, 4)
				parts[p.Partition] = ch
				c.workers.Add(1)
				go c.work(ch)
			}
			select {
			case ch <- p.Records:
			case <-c.ctx.Done():
			}
		})
	}
}

func (c *baseline) work(ch chan []*kgo.Record) {
	defer c.workers.Done()
	for recs := range ch {
		for _, r := range recs {
			for attempt := 1; ; attempt++ {
				err := c.process(r)
				if err == nil {
					break
				}
				if c.ctx.Err() != nil {
					return
				}
				if attempt == 5 {
					c.fail(err)
					return
				}
				time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
			}
			c.cl.MarkCommitRecords(r)
		}
	}
}

// baselineCommand is the outbox message the baseline writes per event.
type baselineCommand struct {
	NotificationID string    `json:"notification_id"`
	CheckupID      string    `json:"checkup_id"`
	DoctorID       string    `json:"doctor_id"`
	Channel        string    `json:"channel"`
	SendAt         time.Time `json:"send_at"`
}

func (c *baseline) process(r *kgo.Record) error {
	ctx := c.ctx
	var id string
	md := make(map[string]string, len(r.Headers))
	for _, h := range r.Headers {
		md[h.Key] = string(h.Value)
		if h.Key == events.HeaderID {
			id = string(h.Value)
		}
	}
	var ev events.CheckupEvent
	if err := json.Unmarshal(r.Value, &ev); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if id == "" || len(ev.ReferringDoctors) == 0 {
		return errors.New("event without id or doctor")
	}
	now := time.Now().UTC()
	payload, err := json.Marshal(baselineCommand{
		NotificationID: id, CheckupID: ev.CheckupID, DoctorID: ev.ReferringDoctors[0].ExternalUserID, Channel: "in_app", SendAt: now,
	})
	if err != nil {
		return err
	}
	metadata, err := json.Marshal(md)
	if err != nil {
		return err
	}

	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	tag, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, message_id, processed_at) VALUES ($1, $2, $3) ON CONFLICT (consumer, message_id) DO NOTHING`,
		baselineConsumer, id, now)
	if err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil // a redelivery
	}
	if _, err := tx.Exec(ctx, `INSERT INTO checkups (id, order_id, patient_ref, status, last_event_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)`,
		ev.CheckupID, ev.OrderID, ev.Patient.Ref, "resulted", ev.OccurredAt, now); err != nil {
		return fmt.Errorf("checkup: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (uuid, payload, metadata, transaction_id) VALUES ($1, $2, $3, pg_current_xact_id())`,
		id, string(payload), string(metadata)); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return tx.Commit(ctx)
}

func (c *baseline) fail(err error) { c.failed.CompareAndSwap(nil, &err) }

func (c *baseline) err() error {
	if p := c.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// stop stops polling, lets the workers finish the record in hand, commits
// the marked offsets and closes the client.
func (c *baseline) stop() {
	c.cancel()
	<-c.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.cl.CommitMarkedOffsets(ctx)
	c.cl.Close()
}
