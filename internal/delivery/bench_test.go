package delivery_test

// BenchmarkDeliveries measures the send-notification consumer: for each
// channel, RFD_BENCH_DELIVERIES (default 10,000) deliveries go through the
// real router, dispatcher and provider clients to the protocol peers of the
// end-to-end harness (go-smtp, fake Twilio, fake FCM with its token
// endpoint, the webhook receiver), first on PostgreSQL + Kafka (the
// production path), then on SQLite + the SQL transport:
//
//	RFD_TEST_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/rfd_test?sslmode=disable \
//	go test ./internal/delivery -run '^$' -bench Deliveries -benchtime 1x -timeout 40m
//
// Each channel runs on a fresh environment (database, kfake cluster,
// peers). RFD_BENCH_DOCTORS (default 1,000) doctors receive the
// notifications round robin; their results category goes only to the
// channel under test. The provider rate limits and the per-doctor SMS cap
// are raised out of the way, everything else is the production
// configuration (roles.NewDispatcher, roles.NewScheduler).
//
// The N notifications are made with notify.Notifier.Notify in batched
// transactions before the clock starts. The router (consumer and, on Kafka,
// the outbox forwarder) is already running then, but a gate in front of the
// consumer's subscriber holds the messages back: on Kafka the clock starts
// once the forwarder has relayed every command and each partition's first
// message waits at the gate, so neither the relay nor the consumer group's
// join is timed. The clock stops when every delivery of the channel has its
// success status (sent or delivered), polled every 100ms. Afterwards the
// peers must have received exactly N messages, one per delivery.
//
// Each run prints "deliveries: <channel> <combination> N in Xs = Y/s" (and
// reports deliveries/s), then where the time went: CPU per delivery of this
// process (consumer, router, forwarder, kfake and the fake peers all run in
// it) and of the PostgreSQL backends of the run's database, and that
// database's commits and rows per delivery by table. The 100ms poll's reads
// of deliveries are in those counters. A summary of every run ends the
// output.
//
// RFD_BENCH_TIMEOUT bounds one channel's timed phase (default 15m); a run
// making no progress for 2 minutes fails; seeding and the wait for the relay
// are bounded by 10 minutes each. RFD_BENCH_CPUPROFILE_DIR, when set,
// receives one CPU profile of the timed phase per combination and channel.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/delivery"
	"github.com/rfd-notify/rfd/internal/delivery/channels/webhook"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/logging"
	"github.com/rfd-notify/rfd/internal/roles"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/providertest"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
	"github.com/rfd-notify/rfd/outbox"
	"github.com/rfd-notify/rfd/router"
)

const (
	benchDefaultDeliveries = 10000
	benchDefaultDoctors    = 1000
	benchDefaultTimeout    = 15 * time.Minute
	benchNotifyBatch       = 500 // notifications per transaction when seeding
	benchPoll              = 100 * time.Millisecond
	benchStall             = 2 * time.Minute
	benchSetupTimeout      = 10 * time.Minute
	benchHookPath          = "/bench"
)

// benchCombinations: the production path first.
var benchCombinations = []string{testenv.PostgresKafka, testenv.SQLiteSQL}

type benchResult struct {
	combination string
	channel     domain.Channel
	n           int
	elapsed     time.Duration
}

func (r benchResult) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r benchResult) line() string {
	return fmt.Sprintf("deliveries: %s %s %d in %.2fs = %.0f/s", r.channel, r.combination, r.n, r.elapsed.Seconds(), r.rate())
}

func BenchmarkDeliveries(b *testing.B) {
	n := benchEnvInt(b, "RFD_BENCH_DELIVERIES", benchDefaultDeliveries)
	doctors := min(benchEnvInt(b, "RFD_BENCH_DOCTORS", benchDefaultDoctors), n)
	timeout := benchDefaultTimeout
	if v := os.Getenv("RFD_BENCH_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("RFD_BENCH_TIMEOUT=%q: want a positive duration", v)
		}
		timeout = d
	}

	var results []benchResult
	for _, combination := range benchCombinations {
		b.Run(combination, func(b *testing.B) {
			for _, ch := range domain.Channels {
				b.Run(string(ch), func(b *testing.B) {
					// Every run delivers n, whatever b.N: use -benchtime 1x.
					r := runDeliveryBench(b, combination, ch, n, doctors, timeout)
					results = slices.DeleteFunc(results, func(o benchResult) bool {
						return o.combination == r.combination && o.channel == r.channel
					})
					results = append(results, r)
				})
			}
		})
	}
	if len(results) > 0 {
		fmt.Println("deliveries: summary")
		for _, r := range results {
			fmt.Println(r.line())
		}
	}
}

func benchEnvInt(b *testing.B, name string, def int) int {
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

// --- the gate -------------------------------------------------------------------------

// benchGate holds the consumer's messages between its subscriber and the
// router until it is opened, so the consumer is subscribed (its Kafka
// group joined) before the clock starts, without handling anything.
type benchGate struct {
	open    chan struct{}
	waiting atomic.Int64 // messages held at the gate now
}

func newBenchGate() *benchGate { return &benchGate{open: make(chan struct{})} }

func (g *benchGate) release() { close(g.open) }

// benchGatedTransport is the env's transport whose subscribers are gated.
// The router's poison queue publishes through it unchanged; the forwarder
// does not use it.
type benchGatedTransport struct {
	router.Transport
	gate *benchGate
}

func (t benchGatedTransport) Subscriber(group string) (message.Subscriber, error) {
	sub, err := t.Transport.Subscriber(group)
	if err != nil {
		return nil, err
	}
	return &benchGatedSubscriber{Subscriber: sub, gate: t.gate, closed: make(chan struct{})}, nil
}

type benchGatedSubscriber struct {
	message.Subscriber
	gate      *benchGate
	closed    chan struct{}
	closeOnce sync.Once
}

func (s *benchGatedSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := s.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	forward := func(m *message.Message) {
		select {
		case out <- m:
		case <-s.closed:
			m.Nack() // unprocessed; lets the inner subscriber close
		case <-ctx.Done():
			m.Nack()
		}
	}
	go func() {
		var held sync.WaitGroup
		defer func() { held.Wait(); close(out) }()
		for m := range in {
			select {
			case <-s.gate.open:
				forward(m)
				continue
			default:
			}
			// Closed gate: hold m aside and keep reading, so every Kafka
			// partition (each waits for its message's ack) gets one
			// message to the gate.
			s.gate.waiting.Add(1)
			held.Go(func() {
				select {
				case <-s.gate.open:
				case <-s.closed:
				case <-ctx.Done():
				}
				s.gate.waiting.Add(-1)
				forward(m)
			})
		}
	}()
	return out, nil
}

func (s *benchGatedSubscriber) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.Subscriber.Close()
}

// --- the environment of one run --------------------------------------------------------

type benchEnv struct {
	b    *testing.B
	env  *testenv.Env
	cfg  config.Config
	gate *benchGate

	smtp     *smtpBackend
	twilio   *fakeTwilio
	fcm      *fakeFCM
	hooks    *hookReceiver
	hooksURL string

	notifier *notify.Notifier

	mu      sync.Mutex
	inApp   []delivery.InAppEvent
	poisons []*message.Message
}

func newBenchEnv(b *testing.B, combination string) *benchEnv {
	b.Helper()
	e := &benchEnv{b: b, gate: newBenchGate(), hooks: providertest.StartHooks(b)}

	// Peers first: they close after the router has stopped.
	e.smtp = providertest.StartSMTP(b)
	smtpPort := e.smtp.Port
	e.twilio = providertest.StartTwilio(b)
	ts := &tokenServer{pub: &serviceAccountKey(nil).PublicKey, issued: map[string]bool{}}
	tokenSrv := httptest.NewServer(ts)
	b.Cleanup(tokenSrv.Close)
	ts.url = tokenSrv.URL + "/token"
	e.fcm = &fakeFCM{tokens: ts, unregistered: map[string]bool{}}
	fcmSrv := httptest.NewServer(e.fcm)
	b.Cleanup(fcmSrv.Close)
	e.hooksURL = e.hooks.URL
	keyFile := filepath.Join(b.TempDir(), "fcm-service-account.json")
	if err := os.WriteFile(keyFile, benchServiceAccountJSON(b), 0o600); err != nil {
		b.Fatal(err)
	}

	e.env = testenv.New(b, combination, func(c *config.Config) {
		c.SMTPHost, c.SMTPPort, c.SMTPTLS = "127.0.0.1", smtpPort, "none"
		c.TwilioBaseURL, c.TwilioAccountSID, c.TwilioAuthToken, c.TwilioFrom = e.twilio.URL, twilioSID, twilioToken, twilioFrom
		c.FCMBaseURL, c.FCMProjectID, c.FCMCredentialsFile, c.FCMTokenURL = fcmSrv.URL, fcmProject, keyFile, ts.url
		c.WebhookAllowLoopback = true
		// The providers' rate limits and the doctors' SMS cap are not what
		// is measured.
		c.RateEmail, c.RateSMS, c.RatePush, c.RateWebhook = 1e6, 1e6, 1e6, 1e6
		c.SMSPerDoctorPerHour = 1_000_000
	})
	e.cfg = e.env.Config
	cfg := e.cfg
	e.env.EnsureTopics(b, cfg.TopicSendNotification, cfg.TopicInApp, cfg.TopicPoison)

	ctx := context.Background()
	senders, closeSenders, err := roles.NewSenders(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(closeSenders) // after the router has stopped: cleanups run last first
	if senders.Email == nil || senders.SMS == nil || senders.Push == nil || senders.Webhook == nil {
		b.Fatalf("a channel is not configured: %+v", senders)
	}
	e.notifier = roles.NewNotifier(cfg, e.env.Outbox)
	dispatcher, err := roles.NewDispatcher(cfg, e.env.DB, e.env.Inbox, e.env.Outbox, senders, e.env.Registry, e.env.Logger)
	if err != nil {
		b.Fatal(err)
	}

	// One router, as `rfd serve` has: the consumer (behind the gate) and,
	// on Kafka, the outbox forwarder.
	rt, err := roles.NewRouter(cfg, benchGatedTransport{Transport: e.env.Transport, gate: e.gate}, e.env.Registry, e.env.DB, e.env.Logger)
	if err != nil {
		b.Fatal(err)
	}
	if e.env.IsKafka() {
		if err := outbox.AddForwarder(rt.Watermill(), e.env.PubSub, e.env.Transport.Publisher(), cfg.TopicOutbox,
			cfg.ConsumerGroup("forwarder"), logging.NewWatermill(e.env.Logger)); err != nil {
			b.Fatal(err)
		}
	}
	consumer, ok := roles.NewHandlers(cfg, e.env.Inbox, e.env.Outbox, e.notifier, dispatcher, e.env.Registry)[config.ConsumerSendNotification]
	if !ok {
		b.Fatal("no send-notification consumer")
	}
	if err := rt.AddConsumer(consumer); err != nil {
		b.Fatal(err)
	}
	e.read(cfg.TopicInApp, "bench-inapp-reader", func(m *message.Message) {
		var ev delivery.InAppEvent
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			b.Errorf("in-app event does not decode: %v", err)
			return
		}
		e.mu.Lock()
		e.inApp = append(e.inApp, ev)
		e.mu.Unlock()
	})
	e.read(cfg.TopicPoison, "bench-poison-reader", func(m *message.Message) {
		e.mu.Lock()
		e.poisons = append(e.poisons, m)
		e.mu.Unlock()
	})
	testenv.Run(b, rt)

	// The scheduler, as in production: it would publish retries.
	sched := roles.NewScheduler(cfg, e.env.DB, e.env.Outbox, e.env.Logger)
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sched.Run(sctx, cfg.DeliveryPollInterval)
	}()
	b.Cleanup(func() { cancel(); <-done })
	return e
}

// benchServiceAccountJSON is serviceAccountJSON for a benchmark.
func benchServiceAccountJSON(b *testing.B) []byte {
	b.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(serviceAccountKey(nil))
	if err != nil {
		b.Fatal(err)
	}
	out, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": fcmProject, "private_key_id": keyID,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": clientEmail, "client_id": "1234567890", "token_uri": "https://oauth2.googleapis.com/token",
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func (e *benchEnv) read(topic, group string, fn func(*message.Message)) {
	sub, err := e.env.Transport.Subscriber(group)
	if err != nil {
		e.b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		e.b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ch {
			fn(m)
			m.Ack()
		}
	}()
	e.b.Cleanup(func() { cancel(); _ = sub.Close(); <-done })
}

func (e *benchEnv) count(ctx context.Context, query string, args ...any) (int, error) {
	var n int
	err := e.env.DB.QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}

func (e *benchEnv) mustCount(query string, args ...any) int {
	e.b.Helper()
	n, err := e.count(context.Background(), query, args...)
	if err != nil {
		e.b.Fatalf("%s: %v", query, err)
	}
	return n
}

// --- fixtures -------------------------------------------------------------------------

func benchDoctorExt(ch domain.Channel, i int) string { return fmt.Sprintf("bench-%s-%05d", ch, i) }

// seedDoctors inserts doctors whose results go only to ch, with a device
// each for push and an endpoint each for webhook; it returns the endpoints'
// signing secrets by doctor id.
func (e *benchEnv) seedDoctors(ch domain.Channel, n int) map[string]string {
	e.b.Helper()
	now := time.Now().UTC()
	p := prefs(map[domain.Category][]domain.Channel{domain.CategoryResults: {ch}})
	secrets := map[string]string{}
	ctx, cancel := context.WithTimeout(context.Background(), benchSetupTimeout)
	defer cancel()
	err := e.env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for i := range n {
			ext := benchDoctorExt(ch, i)
			doc := domain.Doctor{
				ID: "doc-" + ext, ExternalUserID: ext, Name: "Dr. " + ext, LicenceNumber: "MD-" + ext, Specialty: "Cardiology",
				Email: ext + "@clinic.example", Phone: "+66812345678", Locale: "en", TimeZone: "Asia/Bangkok", Active: true,
				ProfileVersion: now, CreatedAt: now, UpdatedAt: now,
			}
			if _, err := tx.NewInsert().Model(&doc).Exec(ctx); err != nil {
				return fmt.Errorf("insert doctor: %w", err)
			}
			row := store.NewPreferencesRow(doc.ID, p, now)
			if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
				return fmt.Errorf("insert preferences: %w", err)
			}
			switch ch {
			case domain.ChannelPush:
				if _, err := tx.NewRaw(`INSERT INTO devices (token, doctor_id, platform, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
					"bench-device-"+ext, doc.ID, "android", now, now).Exec(ctx); err != nil {
					return fmt.Errorf("insert device: %w", err)
				}
			case domain.ChannelWebhook:
				secret := webhook.GenerateSecret()
				secrets[doc.ID] = secret
				if _, err := tx.NewRaw(`INSERT INTO webhook_endpoints (id, doctor_id, url, secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
					"ep-"+ext, doc.ID, e.hooksURL+benchHookPath, secret, now, now).Exec(ctx); err != nil {
					return fmt.Errorf("insert webhook endpoint: %w", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		e.b.Fatalf("seed doctors: %v", err)
	}
	return secrets
}

// notifyAll makes n result notifications, round robin over the doctors, with
// Notify in transactions of benchNotifyBatch, as the checkup-events consumer
// makes them.
func (e *benchEnv) notifyAll(ch domain.Channel, n, doctors int) {
	e.b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchSetupTimeout)
	defer cancel()
	for lo := 0; lo < n; lo += benchNotifyBatch {
		hi := min(lo+benchNotifyBatch, n)
		err := e.env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			for i := lo; i < hi; i++ {
				out, err := e.notifier.Notify(ctx, tx, resultIntent(fmt.Sprintf("CHK-BENCH-%s-%06d", ch, i)), []string{benchDoctorExt(ch, i%doctors)})
				if err != nil {
					return err
				}
				if len(out.Created) != 1 {
					return fmt.Errorf("notification %d: created %v, pending %v", i, out.Created, out.Pending)
				}
			}
			return nil
		})
		if err != nil {
			e.b.Fatalf("notify: %v", err)
		}
	}
	if got := e.mustCount(`SELECT count(*) FROM deliveries WHERE channel = ? AND status = ?`, string(ch), domain.DeliveryQueued); got != n {
		e.b.Fatalf("%d queued %s deliveries after seeding, want %d", got, ch, n)
	}
	if got := e.mustCount(`SELECT count(*) FROM deliveries`); got != n {
		e.b.Fatalf("%d deliveries after seeding, want %d (only %s)", got, n, ch)
	}
}

// waitReady waits until the n commands are where the consumer reads them
// and the consumer is subscribed, with messages waiting at the gate.
func (e *benchEnv) waitReady(n int) {
	e.b.Helper()
	deadline := time.Now().Add(benchSetupTimeout)
	if !e.env.IsKafka() {
		// The SQL outbox writes to the topic table itself: the commands are
		// there; wait for the subscriber's first message.
		for e.gate.waiting.Load() < 1 {
			if time.Now().After(deadline) {
				e.b.Fatal("the consumer did not receive a message before the gate")
			}
			time.Sleep(10 * time.Millisecond)
		}
		return
	}
	sc := sarama.NewConfig()
	sc.Version = sarama.V2_8_0_0
	sc.Metadata.AllowAutoTopicCreation = false
	client, err := sarama.NewClient(e.cfg.KafkaBrokers, sc)
	if err != nil {
		e.b.Fatalf("kafka client: %v", err)
	}
	defer client.Close()
	topic := e.cfg.TopicSendNotification
	var total, nonEmpty int
	var last string
	for {
		total, nonEmpty, err = benchTopicRecords(client, topic)
		held := int(e.gate.waiting.Load())
		if err == nil && total == n && held == nonEmpty {
			break
		}
		if err == nil && total > n {
			e.b.Fatalf("%s holds %d records, more than the %d commands", topic, total, n)
		}
		last = fmt.Sprintf("%d of %d commands relayed to %s (%d partitions used), %d messages at the gate, error %v", total, n, topic, nonEmpty, held, err)
		if time.Now().After(deadline) {
			e.b.Fatalf("not ready within %s: %s", benchSetupTimeout, last)
		}
		time.Sleep(benchPoll)
	}
	e.b.Logf("%d commands on %d partitions of %s, consumer waiting at the gate", total, nonEmpty, topic)
}

// benchTopicRecords counts the records of topic and the partitions that have any.
func benchTopicRecords(client sarama.Client, topic string) (total, nonEmpty int, err error) {
	if err := client.RefreshMetadata(topic); err != nil {
		return 0, 0, err
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, 0, err
	}
	for _, p := range parts {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, 0, err
		}
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, 0, err
		}
		if newest > oldest {
			total += int(newest - oldest)
			nonEmpty++
		}
	}
	return total, nonEmpty, nil
}

// --- one run --------------------------------------------------------------------------

func runDeliveryBench(b *testing.B, combination string, ch domain.Channel, n, doctors int, timeout time.Duration) benchResult {
	b.StopTimer()
	e := newBenchEnv(b, combination)
	secrets := e.seedDoctors(ch, doctors)
	seedStart := time.Now()
	e.notifyAll(ch, n, doctors)
	b.Logf("made %d notifications in %.1fs", n, time.Since(seedStart).Seconds())
	readyStart := time.Now()
	e.waitReady(n)
	b.Logf("ready after %.1fs more", time.Since(readyStart).Seconds())

	stopProfile := benchStartProfile(b, combination, ch)
	dbBefore := e.dbStats()
	pids := map[int]bool{}
	e.backendPIDs(pids)
	cpuBefore := readBenchCPU()
	b.StartTimer()
	start := time.Now()
	e.gate.release()
	elapsed := e.waitDelivered(ch, n, start, timeout)
	b.StopTimer()
	cpuAfter := readBenchCPU()
	stopProfile()
	e.backendPIDs(pids)
	cpu := cpuAfter.since(cpuBefore, pids)
	db := e.dbStats().since(dbBefore)

	r := benchResult{combination: combination, channel: ch, n: n, elapsed: elapsed}
	b.ReportMetric(r.rate(), "deliveries/s")
	lines := []string{r.line(), fmt.Sprintf("deliveries: %s %s per delivery: %s; %s", ch, combination, cpu.per(n), db.per(n, e.env.IsKafka()))}
	if reads := db.tableReads(n); reads != "" {
		lines = append(lines, fmt.Sprintf("deliveries: %s %s rows read per delivery by table: %s", ch, combination, reads))
	}
	for _, l := range lines {
		b.Log(l)
		fmt.Println(l)
	}

	e.verify(ch, n, secrets)
	return r
}

// waitDelivered polls every 100ms until the n deliveries of ch have their
// success status and returns the time since start. It fails on a delivery
// that ended any other way, on a poisoned message, on no progress for
// benchStall and after timeout. (The poll's reads show in the database
// counters: on average n/2 index rows of deliveries per poll.)
func (e *benchEnv) waitDelivered(ch domain.Channel, n int, start time.Time, timeout time.Duration) time.Duration {
	e.b.Helper()
	ctx := context.Background()
	deadline := start.Add(timeout)
	last, lastChange, lastReport := -1, start, start
	for {
		done, err := e.count(ctx, `SELECT count(*) FROM deliveries WHERE channel = ? AND status IN (?, ?)`,
			string(ch), domain.DeliverySent, domain.DeliveryDelivered)
		if err != nil {
			e.b.Fatalf("count deliveries: %v", err)
		}
		if done >= n {
			return time.Since(start)
		}
		// Through the status index: no rows unless something went wrong.
		if ended, err := e.count(ctx, `SELECT count(*) FROM deliveries WHERE status IN (?, ?, ?)`,
			domain.DeliveryFailed, domain.DeliveryUndelivered, domain.DeliverySuppressed); err != nil || ended > 0 {
			e.b.Fatalf("%d deliveries ended without success (%v): %s", ended, err, e.statusSummary())
		}
		e.mu.Lock()
		poisoned := len(e.poisons)
		e.mu.Unlock()
		if poisoned > 0 {
			e.b.Fatalf("%d messages poisoned: %s", poisoned, e.poisonSummary())
		}
		now := time.Now()
		if done != last {
			last, lastChange = done, now
		} else if now.Sub(lastChange) > benchStall {
			e.b.Fatalf("%s: stuck at %d of %d for %s: %s", ch, done, n, benchStall, e.statusSummary())
		}
		if now.After(deadline) {
			e.b.Fatalf("%s: %d of %d after %s: %s", ch, done, n, timeout, e.statusSummary())
		}
		if now.Sub(lastReport) >= 10*time.Second {
			lastReport = now
			el := now.Sub(start).Seconds()
			fmt.Fprintf(os.Stderr, "deliveries: %s %s %d/%d after %.0fs (%.0f/s)\n", ch, e.env.Name, done, n, el, float64(done)/el)
		}
		time.Sleep(benchPoll)
	}
}

func (e *benchEnv) statusSummary() string {
	var rows []struct {
		Status string `bun:"status"`
		Reason string `bun:"status_reason"`
		N      int    `bun:"n"`
	}
	if err := e.env.DB.NewRaw(`SELECT status, status_reason, count(*) AS n FROM deliveries GROUP BY status, status_reason ORDER BY n DESC LIMIT 10`).
		Scan(context.Background(), &rows); err != nil {
		return err.Error()
	}
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s %q: %d", r.Status, r.Reason, r.N))
	}
	return strings.Join(parts, "; ")
}

func (e *benchEnv) poisonSummary() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var parts []string
	for i, m := range e.poisons {
		if i == 5 {
			break
		}
		parts = append(parts, m.UUID+": "+m.Metadata.Get("reason_poisoned"))
	}
	return strings.Join(parts, "; ")
}

func benchStartProfile(b *testing.B, combination string, ch domain.Channel) func() {
	b.Helper()
	dir := os.Getenv("RFD_BENCH_CPUPROFILE_DIR")
	if dir == "" {
		return func() {}
	}
	name := strings.NewReplacer("+", "-").Replace(combination) + "-" + string(ch) + ".pprof"
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		b.Fatalf("cpu profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		b.Fatalf("cpu profile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// --- where the time goes ----------------------------------------------------------------

// benchCPU is CPU time used by this process (consumer, router, forwarder,
// kfake and the fake peers all run in it) and by every PostgreSQL server
// process on the host (other databases' work included, if anything else
// runs on the server meanwhile).
type benchCPU struct {
	self     time.Duration
	postgres map[int]time.Duration // by pid
	pgTotal  time.Duration         // set by since
	pgOurs   time.Duration         // set by since
}

func readBenchCPU() benchCPU {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	c := benchCPU{self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), postgres: map[int]time.Duration{}}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ... utime(14) stime(15), in USER_HZ ticks.
		line := string(raw)
		open, closing := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
		if open < 0 || closing < open || line[open+1:closing] != "postgres" {
			continue
		}
		fields := strings.Fields(line[closing+1:])
		if len(fields) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		pid, _ := strconv.Atoi(strings.TrimSpace(line[:open]))
		c.postgres[pid] = time.Duration(utime+stime) * (time.Second / 100)
	}
	return c
}

// since is the CPU used from before to c: all PostgreSQL processes in
// pgTotal, the backends in ours (this database's) in pgOurs. Processes that
// started in between count from zero, those that exited are lost.
func (c benchCPU) since(before benchCPU, ours map[int]bool) benchCPU {
	out := benchCPU{self: c.self - before.self}
	for pid, t := range c.postgres {
		d := t - before.postgres[pid]
		out.pgTotal += d
		if ours[pid] {
			out.pgOurs += d
		}
	}
	return out
}

func (c benchCPU) per(n int) string {
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	load := ""
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(raw)); len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}
	if c.pgTotal == 0 {
		return fmt.Sprintf("CPU Go process %.0fµs (load average %s)", us(c.self), load)
	}
	return fmt.Sprintf("CPU Go process %.0fµs + PostgreSQL backends of this database %.0fµs (all PostgreSQL processes on the host %.0fµs; load average %s)",
		us(c.self), us(c.pgOurs), us(c.pgTotal), load)
}

// backendPIDs adds the PostgreSQL backends of this database to pids.
func (e *benchEnv) backendPIDs(pids map[int]bool) {
	if !strings.HasPrefix(e.cfg.DatabaseURL, "postgres") {
		return
	}
	var list []int
	if err := e.env.DB.NewRaw(`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`).Scan(context.Background(), &list); err != nil {
		e.b.Logf("pg_stat_activity: %v", err)
		return
	}
	for _, pid := range list {
		pids[pid] = true
	}
}

// benchDBStats are the database's counters (PostgreSQL only).
type benchDBStats struct {
	ok                                  bool
	commits, inserted, updated, fetched int64
	tables                              map[string]benchTableStats
}

// benchTableStats are one table's counters from pg_stat_user_tables.
type benchTableStats struct {
	seqScans, seqRows, idxScans, idxRows int64
}

func (e *benchEnv) dbStats() benchDBStats {
	if !strings.HasPrefix(e.cfg.DatabaseURL, "postgres") {
		return benchDBStats{}
	}
	time.Sleep(1100 * time.Millisecond) // backends flush their counters at most once a second
	var s benchDBStats
	if err := e.env.DB.QueryRowContext(context.Background(), `SELECT xact_commit, tup_inserted, tup_updated, tup_returned + tup_fetched
FROM pg_stat_database WHERE datname = current_database()`).Scan(&s.commits, &s.inserted, &s.updated, &s.fetched); err != nil {
		e.b.Logf("pg_stat_database: %v", err)
		return benchDBStats{}
	}
	rows, err := e.env.DB.QueryContext(context.Background(), `SELECT relname, seq_scan, seq_tup_read, COALESCE(idx_scan, 0), COALESCE(idx_tup_fetch, 0)
FROM pg_stat_user_tables`)
	if err != nil {
		e.b.Logf("pg_stat_user_tables: %v", err)
		return benchDBStats{}
	}
	defer rows.Close()
	s.tables = map[string]benchTableStats{}
	for rows.Next() {
		var name string
		var t benchTableStats
		if err := rows.Scan(&name, &t.seqScans, &t.seqRows, &t.idxScans, &t.idxRows); err != nil {
			e.b.Logf("pg_stat_user_tables: %v", err)
			return benchDBStats{}
		}
		s.tables[name] = t
	}
	if rows.Err() != nil {
		return benchDBStats{}
	}
	s.ok = true
	return s
}

func (s benchDBStats) since(before benchDBStats) benchDBStats {
	if !s.ok || !before.ok {
		return benchDBStats{}
	}
	out := benchDBStats{ok: true, commits: s.commits - before.commits, inserted: s.inserted - before.inserted,
		updated: s.updated - before.updated, fetched: s.fetched - before.fetched, tables: map[string]benchTableStats{}}
	for name, t := range s.tables {
		b := before.tables[name]
		out.tables[name] = benchTableStats{seqScans: t.seqScans - b.seqScans, seqRows: t.seqRows - b.seqRows,
			idxScans: t.idxScans - b.idxScans, idxRows: t.idxRows - b.idxRows}
	}
	return out
}

// tableReads lists the tables that read the most rows, per delivery.
func (s benchDBStats) tableReads(n int) string {
	if !s.ok {
		return ""
	}
	names := make([]string, 0, len(s.tables))
	for name := range s.tables {
		names = append(names, name)
	}
	reads := func(name string) int64 { return s.tables[name].seqRows + s.tables[name].idxRows }
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(reads(b), reads(a)) })
	f := func(v int64) float64 { return float64(v) / float64(n) }
	var out []string
	for _, name := range names[:min(6, len(names))] {
		t := s.tables[name]
		out = append(out, fmt.Sprintf("%s %.1f (%.2f seq scans reading %.1f, %.2f index scans fetching %.1f)",
			name, f(t.seqRows+t.idxRows), f(t.seqScans), f(t.seqRows), f(t.idxScans), f(t.idxRows)))
	}
	return strings.Join(out, "; ")
}

func (s benchDBStats) per(n int, kafka bool) string {
	if !s.ok {
		return "no database counters (SQLite)"
	}
	f := func(v int64) string { return strconv.FormatFloat(float64(v)/float64(n), 'f', 1, 64) }
	what := "this database"
	if kafka {
		what += ", outbox forwarder included"
	}
	return fmt.Sprintf("%s commits, %s rows inserted, %s updated, %s read (%s)", f(s.commits), f(s.inserted), f(s.updated), f(s.fetched), what)
}

// --- verification ---------------------------------------------------------------------

// verify checks, once nothing more arrives, that every delivery succeeded
// on its first attempt and that the channel's peer received exactly one
// message per delivery.
func (e *benchEnv) verify(ch domain.Channel, n int, secrets map[string]string) {
	e.b.Helper()
	if ch == domain.ChannelInApp {
		// The broadcasts travel through the outbox (and on Kafka the
		// forwarder) after the deliveries are committed.
		deadline := time.Now().Add(waitLong)
		for {
			e.mu.Lock()
			got := len(e.inApp)
			e.mu.Unlock()
			if got >= n {
				break
			}
			if time.Now().After(deadline) {
				e.b.Fatalf("in-app: %d of %d broadcasts after %s", got, n, waitLong)
			}
			time.Sleep(benchPoll)
		}
	}
	time.Sleep(time.Second) // anything duplicated or retried would show up now

	if got := e.mustCount(`SELECT count(*) FROM deliveries WHERE channel = ? AND status IN (?, ?)`,
		string(ch), domain.DeliverySent, domain.DeliveryDelivered); got != n {
		e.b.Errorf("%d successful %s deliveries, want %d: %s", got, ch, n, e.statusSummary())
	}
	if got := e.mustCount(`SELECT count(*) FROM delivery_attempts`); got != n {
		e.b.Errorf("%d delivery attempts, want %d (one each)", got, n)
	}
	if got := e.mustCount(`SELECT count(*) FROM delivery_attempts WHERE outcome = 'success'`); got != n {
		e.b.Errorf("%d successful attempts, want %d", got, n)
	}
	e.mu.Lock()
	poisoned := len(e.poisons)
	e.mu.Unlock()
	if poisoned > 0 {
		e.b.Errorf("%d messages poisoned: %s", poisoned, e.poisonSummary())
	}

	// distinct checks that ids holds n different non-empty values.
	distinct := func(what string, ids []string) {
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			if id == "" {
				e.b.Errorf("%s: a message without id", what)
				return
			}
			seen[id] = true
		}
		if len(ids) != n || len(seen) != n {
			e.b.Errorf("%s: %d messages, %d distinct, want exactly %d", what, len(ids), len(seen), n)
		}
	}

	// Only the channel under test may have been used.
	others := map[domain.Channel]int{
		domain.ChannelEmail:   len(e.smtp.Messages()),
		domain.ChannelPush:    len(e.fcm.requests()),
		domain.ChannelWebhook: len(e.hooks.Requests(benchHookPath)),
	}
	_, twilioReqs := e.twilio.Snapshot()
	others[domain.ChannelSMS] = len(twilioReqs)
	e.mu.Lock()
	others[domain.ChannelInApp] = len(e.inApp)
	e.mu.Unlock()
	for other, got := range others {
		if other != ch && got != 0 {
			e.b.Errorf("%s got %d messages in the %s run", other, got, ch)
		}
	}

	switch ch {
	case domain.ChannelInApp:
		e.mu.Lock()
		ids := make([]string, 0, len(e.inApp))
		for _, ev := range e.inApp {
			ids = append(ids, ev.NotificationID)
		}
		e.mu.Unlock()
		distinct("in-app broadcasts (notification ids)", ids)

	case domain.ChannelEmail:
		msgs := e.smtp.Messages()
		ids := make([]string, 0, len(msgs))
		for _, m := range msgs {
			pm, err := mail.ReadMessage(bytes.NewReader(m.Data))
			if err != nil {
				e.b.Errorf("received mail does not parse: %v", err)
				return
			}
			ids = append(ids, pm.Header.Get("Message-ID"))
		}
		distinct("SMTP messages (Message-ID)", ids)

	case domain.ChannelSMS:
		creates, reqs := e.twilio.Snapshot()
		if creates != n {
			e.b.Errorf("twilio: %d billable messages, want %d", creates, n)
		}
		ids := make([]string, 0, len(reqs))
		for _, r := range reqs {
			if r.Code != 201 {
				e.b.Errorf("twilio answered %d", r.Code)
			}
			ids = append(ids, r.Token)
		}
		distinct("Twilio requests (idempotency tokens)", ids)

	case domain.ChannelPush:
		reqs := e.fcm.requests()
		e.fcm.mu.Lock()
		sent := e.fcm.sent
		e.fcm.mu.Unlock()
		if sent != n {
			e.b.Errorf("FCM: %d messages accepted, want %d", sent, n)
		}
		ids := make([]string, 0, len(reqs))
		for _, r := range reqs {
			data, _ := r.Message["data"].(map[string]any)
			id, _ := data["delivery_id"].(string)
			ids = append(ids, id)
		}
		distinct("FCM requests (delivery ids)", ids)

	case domain.ChannelWebhook:
		reqs := e.hooks.Requests(benchHookPath)
		ids := make([]string, 0, len(reqs))
		bad := 0
		for _, r := range reqs {
			ids = append(ids, r.Header.Get("webhook-id"))
			var payload delivery.WebhookPayload
			if err := json.Unmarshal(r.Body, &payload); err != nil {
				bad++
				continue
			}
			if err := verifyWebhook(secrets[payload.DoctorID], r.Header, r.Body); err != nil || r.Status != 204 {
				bad++
			}
		}
		if bad > 0 {
			e.b.Errorf("webhook: %d requests without a valid signature or not answered 204", bad)
		}
		distinct("webhook requests (webhook-id)", ids)
	}
}
