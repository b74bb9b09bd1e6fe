package chaos

// The harness: the rfd binary, its roles as subprocesses, kfake, the
// provider servers, the doctors, and the events with the effects the
// ledger expects of them.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/delivery/channels/email"
	"github.com/rfd-notify/rfd/internal/platform/kafkapubsub"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/providertest"
	"github.com/rfd-notify/rfd/internal/testkit/rfdbin"
	"github.com/rfd-notify/rfd/test/chaos/ledger"
)

// partitions of every topic kfake creates.
const partitions = 12

// --- the binary ---------------------------------------------------------------

// binary is the rfd binary as the Dockerfile builds it, built once per test
// run.
func binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: crash and fault runs are not in the fast tier; scripts/test runs them")
	}
	return rfdbin.Build(t)
}

// --- kfake ----------------------------------------------------------------------

// startKafka starts kfake on a loopback port the subprocesses reach.
func startKafka(t testing.TB) []string {
	t.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(freePort(t)),
		kfake.DefaultNumPartitions(partitions),
		kfake.AllowAutoTopicCreation(),
		kfake.GroupMinSessionTimeout(100*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// --- processes ------------------------------------------------------------------

// proc is one role's subprocess, restarted under the same name.
type proc struct {
	name  string // e.g. "consume send-notification"
	args  []string
	env   []string
	admin string // host:port of /readyz
	log   string // file the process writes its stderr to

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	exit   error
	starts int
	// readySince is when the current process was first seen ready.
	readySince time.Time
}

func (p *proc) start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t), p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	// A test that dies (a timeout panic) takes its roles with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.done, p.starts, p.readySince = cmd, make(chan struct{}), p.starts+1, time.Time{}
	done := p.done
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.exit = err
		p.mu.Unlock()
		close(done)
	}()
}

// signal sends sig to the running process and waits up to wait for it to
// exit. It returns the exit error, and false if the process did not exit.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) (error, bool) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil, true
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.exit, true
	case <-time.After(wait):
		return nil, false
	}
}

// alive reports whether the current process is still running.
func (p *proc) alive() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// isReady reports whether the process runs and answers /readyz with 200.
func (p *proc) isReady() bool {
	if !p.alive() {
		return false
	}
	cl := http.Client{Timeout: 500 * time.Millisecond}
	resp, err := cl.Get("http://" + p.admin + "/readyz")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	p.mu.Lock()
	if p.readySince.IsZero() {
		p.readySince = time.Now()
	}
	p.mu.Unlock()
	return true
}

// upFor reports whether the process has been ready for at least d.
func (p *proc) upFor(d time.Duration) bool {
	if !p.isReady() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Since(p.readySince) >= d
}

// ready polls /readyz until it answers 200 or timeout passes.
func (p *proc) ready(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if !p.alive() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.exit, tail(p.log, 20))
		}
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s (last: %s)\n%s", p.name, timeout, last, tail(p.log, 20))
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

// --- the cluster ------------------------------------------------------------------

// roles every run starts: the consumers of the events it sends and the
// outbox relay.
var roles = [][]string{
	{"consume", "checkup-events"},
	{"consume", "order-history-events"},
	{"consume", "send-notification"},
	{"worker"},
}

type cluster struct {
	t       testing.TB
	dir     string
	dbURL   string
	db      *sql.DB
	brokers []string
	smtp    *providertest.SMTP
	twilio  *providertest.Twilio
	hooks   *providertest.Hooks
	env     []string
	procs   []*proc
	// commandRepeats counts send-notification commands the relay put on
	// the topic more than once (observe sets it).
	commandRepeats int
	// poisonRecords counts the records on the poison topic (observe sets
	// it): a malformed event published twice is poisoned twice.
	poisonRecords int
}

// newCluster starts the providers, migrates the database at dbURL with
// `rfd migrate up` and builds the roles' environment; startRoles starts
// them.
func newCluster(t testing.TB, dbURL string, brokers []string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), dbURL: dbURL, brokers: brokers}
	c.smtp = providertest.StartSMTP(t)
	c.twilio = providertest.StartTwilio(t)
	c.hooks = providertest.StartHooks(t)
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	c.db = db
	c.env = append(os.Environ(),
		"RFD_DATABASE_URL="+dbURL,
		"RFD_TRANSPORT=kafka",
		"RFD_KAFKA_BROKERS="+strings.Join(brokers, ","),
		"RFD_KAFKA_SESSION_TIMEOUT=1500ms",
		"RFD_KAFKA_HEARTBEAT_INTERVAL=250ms",
		"RFD_LOG_LEVEL=warn",
		"RFD_RETRY_INITIAL_INTERVAL=50ms",
		"RFD_RETRY_MAX_INTERVAL=1s",
		"RFD_RETRY_MAX_ATTEMPTS=10",
		"RFD_SHUTDOWN_TIMEOUT=15s",
		"RFD_SQL_POLL_INTERVAL=50ms",
		"RFD_DELIVERY_INITIAL_BACKOFF=200ms",
		"RFD_DELIVERY_MAX_BACKOFF=2s",
		"RFD_DELIVERY_POLL_INTERVAL=200ms",
		"RFD_SMTP_HOST=127.0.0.1",
		"RFD_SMTP_PORT="+strconv.Itoa(c.smtp.Port),
		"RFD_SMTP_TLS=none",
		"RFD_TWILIO_BASE_URL="+c.twilio.URL,
		"RFD_TWILIO_ACCOUNT_SID="+providertest.TwilioSID,
		"RFD_TWILIO_AUTH_TOKEN="+providertest.TwilioToken,
		"RFD_TWILIO_FROM="+providertest.TwilioFrom,
		"RFD_WEBHOOK_ALLOW_LOOPBACK=true",
		"RFD_RATE_EMAIL=1000000", "RFD_RATE_SMS=1000000", "RFD_RATE_WEBHOOK=1000000", "RFD_RATE_PUSH=1000000",
		"RFD_SMS_PER_DOCTOR_PER_HOUR=1000000",
	)
	c.run("migrate", "up")
	return c
}

// run runs a one-shot command of the binary.
func (c *cluster) run(args ...string) {
	c.t.Helper()
	cmd := exec.Command(binary(c.t), args...)
	cmd.Env = c.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("rfd %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
}

// startRoles starts one process per role (and per extra role) and waits
// until each is ready.
func (c *cluster) startRoles(extra ...[]string) {
	c.t.Helper()
	for i, args := range append(slices.Clone(roles), extra...) {
		c.procs = append(c.procs, c.addProc(strings.Join(args, " "), args, i))
	}
	for _, p := range c.procs {
		p.start(c.t)
	}
	for _, p := range c.procs {
		if err := p.ready(60 * time.Second); err != nil {
			c.t.Fatal(err)
		}
	}
	c.t.Cleanup(c.stopAll)
}

func (c *cluster) addProc(name string, args []string, i int) *proc {
	// The api role listens on both addresses (its /metrics only on admin),
	// so they differ; /readyz answers on admin in every role.
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(c.t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(c.t))
	env := append(slices.Clone(c.env), "RFD_ADMIN_ADDR="+admin, "RFD_HTTP_ADDR="+httpAddr)
	return &proc{name: name, args: args, env: env, admin: admin,
		log: filepath.Join(c.dir, fmt.Sprintf("%d-%s.log", i, strings.ReplaceAll(name, " ", "-")))}
}

// stopAll stops every process with SIGTERM (SIGKILL after 20s).
func (c *cluster) stopAll() {
	for _, p := range c.procs {
		if _, ok := p.signal(syscall.SIGTERM, 20*time.Second); !ok {
			_, _ = p.signal(syscall.SIGKILL, 5*time.Second)
		}
	}
}

// --- doctors ----------------------------------------------------------------------

// channels every seeded doctor wants for results and orders: in-app and
// the three providers the run counts at.
var wanted = []domain.Channel{domain.ChannelInApp, domain.ChannelEmail, domain.ChannelSMS, domain.ChannelWebhook}

func doctorExt(i int) string { return fmt.Sprintf("chaos-doc-%04d", i) }

// seedDoctors registers n doctors (as user-created would have) with
// email, phone, a webhook endpoint on the receiver and every wanted
// channel for results and orders.
func (c *cluster) seedDoctors(n int) {
	c.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	p := domain.DefaultPreferences()
	p.Channels[domain.CategoryResults] = wanted
	p.Channels[domain.CategoryOrders] = wanted
	row := store.NewPreferencesRow("", p, now)
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	for i := range n {
		ext := doctorExt(i)
		id := handlers.DoctorID(ext)
		if _, err := tx.ExecContext(ctx, `INSERT INTO doctors (id, external_user_id, name, licence_number, specialty, clinic, email, phone,
locale, time_zone, active, profile_version, created_at, updated_at) VALUES ($1, $2, $3, $4, 'Cardiology', 'Chaos Clinic', $5, '+66812345678', 'en', 'Asia/Bangkok', TRUE, $6, $6, $6)`,
			id, ext, "Dr. "+ext, "MD-"+ext, ext+"@clinic.example", now); err != nil {
			c.t.Fatalf("insert doctor: %v", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO doctor_preferences (doctor_id, channels, quiet_start, quiet_end, digest, fallback_order, updated_at)
VALUES ($1, $2, '', '', $3, $4, $5)`, id, row.Channels, row.Digest, row.FallbackOrder, now); err != nil {
			c.t.Fatalf("insert preferences: %v", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_endpoints (id, doctor_id, url, secret, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)`,
			"ep-"+ext, id, c.hooks.URL+"/hooks/"+ext, "whsec_"+"Y2hhb3MtdGVzdC1zZWNyZXQtMzItYnl0ZXMtbG9uZyE=", now); err != nil {
			c.t.Fatalf("insert webhook endpoint: %v", err)
		}
	}
	if err := tx.Commit(); err != nil {
		c.t.Fatal(err)
	}
}

// --- events and their effects -------------------------------------------------------

// Effect kinds the runs check.
const (
	kCheckup       ledger.Kind = "checkup"
	kResultVersion ledger.Kind = "result_version"
	kOrder         ledger.Kind = "order_completed"
	kOrderEvent    ledger.Kind = "order_event"
	kInbox         ledger.Kind = "inbox"
	kNotification  ledger.Kind = "notification"
	kSourceDoctor  ledger.Kind = "notification_source_doctor"
	kDelivery      ledger.Kind = "delivery"
	kDeliverySent  ledger.Kind = "delivery_sent"
	kCommand       ledger.Kind = "send_notification_command"
	kEmail         ledger.Kind = "provider_email"
	kSMS           ledger.Kind = "provider_sms"
	kSMSBilled     ledger.Kind = "provider_sms_billed"
	kWebhook       ledger.Kind = "provider_webhook"
	// kPoison is a message on the poison topic (by original topic and
	// message id), kPoisonRow its row in poison_messages, stored by the
	// worker's poison drain. Only malformed events may have them.
	kPoison    ledger.Kind = "poisoned"
	kPoisonRow ledger.Kind = "poison_row"
)

// event is one record the harness publishes.
type event struct {
	id      string
	topic   string
	key     string
	payload []byte
	headers []kgo.RecordHeader
	effects []ledger.Effect
}

// makeEvents builds n events over doctors: three in four are checkup
// results, one in four an order-history event (each order gets placed,
// then completed). tag keeps ids of different runs apart.
func makeEvents(t testing.TB, tag string, n, doctors int) []event {
	t.Helper()
	occurred := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	evs := make([]event, 0, n)
	order := 0
	for i := 0; len(evs) < n; i++ {
		doc := doctorExt(i % doctors)
		docID := handlers.DoctorID(doc)
		if i%8 == 3 && len(evs)+2 <= n {
			order++
			orderID := fmt.Sprintf("ORD-%s-%07d", tag, order)
			for seq, status := range []string{events.OrderPlaced, events.OrderCompleted} {
				id := fmt.Sprintf("ce-%s-ord-%07d-%d", tag, order, seq+1)
				ev := events.OrderHistoryEvent{OrderID: orderID, Sequence: int64(seq + 1), Status: status, OccurredAt: occurred,
					Patient: events.OrderPatient{Ref: fmt.Sprintf("PT-%07d", i)}, ReferringDoctors: []events.OrderDoctor{{ExternalUserID: doc}},
					Description: "Lipid panel"}
				payload, err := ev.Encode()
				if err != nil {
					t.Fatal(err)
				}
				effects := []ledger.Effect{{Kind: kInbox, Key: "order-history-events/" + id}, {Kind: kOrderEvent, Key: fmt.Sprintf("%s/%d", orderID, seq+1)}}
				if status == events.OrderCompleted {
					effects = append(effects, ledger.Effect{Kind: kOrder, Key: orderID})
					effects = append(effects, notificationEffects(fmt.Sprintf("order/%s/%s/%d", orderID, status, seq+1), orderID+"/0", docID)...)
				}
				evs = append(evs, event{id: id, topic: "order-history-events", key: orderID, payload: payload,
					headers: headers(id, events.TypeOrderHistoryEvent, occurred), effects: effects})
			}
			continue
		}
		checkup := fmt.Sprintf("CHK-%s-%07d", tag, i)
		id := fmt.Sprintf("ce-%s-chk-%07d", tag, i)
		ev := events.CheckupEvent{
			EventType: events.CheckupResultAvailable, CheckupID: checkup, OrderID: "ORD-" + checkup,
			Patient:          events.Patient{Ref: fmt.Sprintf("PT-%07d", i), DisplayName: "Somchai Jaidee", BirthYear: 1970},
			ReferringDoctors: []events.ReferringDoctor{{ExternalUserID: doc, Role: events.RolePrimary}},
			OccurredAt:       occurred,
			Result: &events.Result{Version: 1, Status: events.ResultFinal,
				Tests: []events.Test{{Code: "LDL", Name: "LDL cholesterol", Value: "3.1", Unit: "mmol/L", Flag: events.FlagNormal}}},
		}
		payload, err := ev.Encode()
		if err != nil {
			t.Fatal(err)
		}
		effects := []ledger.Effect{{Kind: kInbox, Key: "checkup-events/" + id}, {Kind: kCheckup, Key: checkup}, {Kind: kResultVersion, Key: checkup + "/1"}}
		effects = append(effects, notificationEffects(fmt.Sprintf("checkup/%s/result/1", checkup), checkup+"/1", docID)...)
		evs = append(evs, event{id: id, topic: "checkup-events", key: checkup, payload: payload,
			headers: headers(id, events.TypeCheckupEvent, occurred), effects: effects})
	}
	return evs
}

// notificationEffects are the effects of one notification of intentKey to
// docID: the row, one per (source, version, doctor), and per wanted
// channel a delivery, sent, its command on the topic, and one call at its
// provider (billed once for SMS).
func notificationEffects(intentKey, sourceVersion, docID string) []ledger.Effect {
	dedup := notify.DedupKey(notify.Intent{Key: intentKey}, docID, "")
	nid := notify.NotificationID(dedup)
	out := []ledger.Effect{{Kind: kNotification, Key: dedup}, {Kind: kSourceDoctor, Key: sourceVersion + "/" + docID}}
	for _, ch := range wanted {
		did := notify.DeliveryID(nid, ch)
		out = append(out, ledger.Effect{Kind: kDelivery, Key: did}, ledger.Effect{Kind: kDeliverySent, Key: did}, ledger.Effect{Kind: kCommand, Key: did})
		switch ch {
		case domain.ChannelEmail:
			out = append(out, ledger.Effect{Kind: kEmail, Key: did})
		case domain.ChannelSMS:
			out = append(out, ledger.Effect{Kind: kSMS, Key: did}, ledger.Effect{Kind: kSMSBilled, Key: did})
		case domain.ChannelWebhook:
			out = append(out, ledger.Effect{Kind: kWebhook, Key: did})
		}
	}
	return out
}

func headers(id, typ string, at time.Time) []kgo.RecordHeader {
	md := events.CloudEventMetadata(id, typ, "chaos-harness", at)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range md {
			if !yield(k) {
				return
			}
		}
	})
	hs := make([]kgo.RecordHeader, 0, len(keys))
	for _, k := range keys {
		hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(md[k])})
	}
	return hs
}

// --- publishing ------------------------------------------------------------------------

type producer struct {
	cl *kgo.Client
	l  *ledger.Ledger
	// handed is when each event id was first handed to the client, for
	// latencies (as test/bench/harness measures them).
	handed map[string]time.Time
}

func newProducer(t testing.TB, brokers []string, l *ledger.Ledger) *producer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &producer{cl: cl, l: l, handed: map[string]time.Time{}}
}

// publish sends evs at about rate per second, republishing about
// republishPct percent of them a little later (same ce_id), and records
// every publish in the ledger once the broker acknowledged it.
func (p *producer) publish(ctx context.Context, evs []event, rate float64, republishPct int) error {
	var (
		mu       sync.Mutex
		firstErr error
	)
	send := func(e event) {
		r := &kgo.Record{Topic: e.topic, Key: []byte(e.key), Value: e.payload, Headers: e.headers}
		p.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("produce %s: %w", e.id, err)
				}
				mu.Unlock()
				return
			}
			p.l.Sent(e.id, e.effects...)
		})
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var again []event
	for i, e := range evs {
		p.handed[e.id] = time.Now()
		send(e)
		if rand.IntN(100) < republishPct {
			again = append(again, e)
		}
		// Republish a while after the first publish, mixed into the stream.
		if i%50 == 49 || i == len(evs)-1 {
			for _, a := range again {
				send(a)
			}
			again = again[:0]
		}
		if d := time.Until(start.Add(time.Duration(i+1) * interval)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if err := p.cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return firstErr
}

// --- observing ----------------------------------------------------------------------------

// observe gathers every effect the runs check from the database, the
// topics and the providers.
func (c *cluster) observe(ctx context.Context, l *ledger.Ledger) (ledger.Observed, error) {
	obs := ledger.Observed{}
	for kind, q := range map[ledger.Kind]string{
		kCheckup:       `SELECT id, count(*) FROM checkups GROUP BY id`,
		kResultVersion: `SELECT checkup_id || '/' || version, count(*) FROM result_versions GROUP BY 1`,
		kOrder:         `SELECT id, count(*) FROM orders WHERE status = 'completed' AND last_seq = 2 GROUP BY id`,
		kOrderEvent:    `SELECT order_id || '/' || seq, count(*) FROM order_events GROUP BY 1`,
		kInbox:         `SELECT consumer || '/' || message_id, count(*) FROM inbox WHERE consumer IN ('checkup-events', 'order-history-events') GROUP BY 1`,
		kNotification:  `SELECT dedup_key, count(*) FROM notifications GROUP BY 1`,
		kSourceDoctor:  `SELECT COALESCE(checkup_id, order_id) || '/' || COALESCE(result_version, 0) || '/' || doctor_id, count(*) FROM notifications GROUP BY 1`,
		kDelivery:      `SELECT id, count(*) FROM deliveries GROUP BY id`,
		kDeliverySent:  `SELECT id, count(*) FROM deliveries WHERE status IN ('sent', 'delivered') GROUP BY id`,
		kPoisonRow:     `SELECT topic || '/' || message_id, count(*) FROM poison_messages GROUP BY 1`,
	} {
		counts, err := ledger.CountRows(ctx, c.db, q)
		if err != nil {
			return nil, err
		}
		obs[kind] = counts
	}

	// The topics: every delivery's command reached send-notification (a
	// relay may repeat one: the transport is at-least-once, the effects
	// are not, so a command counts once), and nothing but the malformed
	// events was poisoned (each once or more: one published twice is
	// poisoned twice).
	cmds, err := readTopic(ctx, c.brokers, "send-notification", func(r *kgo.Record) string {
		var cmd struct {
			DeliveryID string `json:"delivery_id"`
		}
		_ = jsonUnmarshal(r.Value, &cmd)
		return cmd.DeliveryID
	})
	if err != nil {
		return nil, err
	}
	obs[kCommand] = ledger.Counts{}
	for k, n := range ledger.Tally(cmds) {
		obs[kCommand][k] = 1
		c.commandRepeats += n - 1
	}
	poisoned, err := readTopic(ctx, c.brokers, "rfd-poison", func(r *kgo.Record) string {
		return header(r, middleware.PoisonedTopicKey) + "/" + header(r, kafkapubsub.UUIDHeader)
	})
	if err != nil {
		return nil, err
	}
	obs[kPoison] = ledger.Counts{}
	for k, n := range ledger.Tally(poisoned) {
		obs[kPoison][k] = 1
		c.poisonRecords += n
	}

	// The providers, per delivery id: what reached them and what SMS billed.
	var mails []string
	for _, m := range c.smtp.Messages() {
		mails = append(mails, strings.TrimSuffix(m.MessageID(), email.MessageIDFor("")))
	}
	obs[kEmail] = ledger.Tally(mails)
	var smsTokens []string
	_, reqs := c.twilio.Snapshot()
	for _, r := range reqs {
		if r.Code == http.StatusCreated {
			smsTokens = append(smsTokens, r.Token)
		}
	}
	obs[kSMS] = ledger.Tally(smsTokens)
	obs[kSMSBilled] = ledger.Counts(c.twilio.Billed())
	var hooks []string
	for _, r := range c.hooks.All() {
		hooks = append(hooks, r.Header.Get("webhook-id"))
	}
	obs[kWebhook] = ledger.Tally(hooks)
	return obs, nil
}

// providerHits returns the times a provider received each delivery id.
func (c *cluster) providerHits() map[ledger.Kind]map[string][]time.Time {
	out := map[ledger.Kind]map[string][]time.Time{kEmail: {}, kSMS: {}, kWebhook: {}}
	for _, m := range c.smtp.Messages() {
		id := strings.TrimSuffix(m.MessageID(), email.MessageIDFor(""))
		out[kEmail][id] = append(out[kEmail][id], m.At)
	}
	_, reqs := c.twilio.Snapshot()
	for _, r := range reqs {
		out[kSMS][r.Token] = append(out[kSMS][r.Token], r.At)
	}
	for _, r := range c.hooks.All() {
		id := r.Header.Get("webhook-id")
		out[kWebhook][id] = append(out[kWebhook][id], r.At)
	}
	return out
}

// readTopic reads every record of topic from the start and returns
// key(record) of each.
func readTopic(ctx context.Context, brokers []string, topic string, key func(*kgo.Record) string) ([]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	// The end offsets first, so the read knows when it is done.
	ends, err := endOffsets(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	var out []string
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for len(ends) > 0 {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %d partitions unfinished: %w", topic, len(ends), rctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, key(r))
			if e, ok := ends[r.Partition]; ok && r.Offset+1 >= e {
				delete(ends, r.Partition)
			}
		})
	}
	return out, nil
}

// endOffsets returns the high watermark of each non-empty partition of
// topic (none for a topic that does not exist).
func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata %s: %w", topic, err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for _, t := range mresp.Topics {
		if t.ErrorCode != 0 {
			return map[int32]int64{}, nil // unknown topic: nothing was written
		}
		for _, p := range t.Partitions {
			lp := kmsg.NewListOffsetsRequestTopicPartition()
			lp.Partition = p.Partition
			lp.Timestamp = -1 // latest
			lt.Partitions = append(lt.Partitions, lp)
		}
	}
	req.Topics = append(req.Topics, lt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("list offsets %s: %w", topic, err)
	}
	out := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return nil, fmt.Errorf("list offsets %s/%d: error code %d", topic, p.Partition, p.ErrorCode)
			}
			if p.Offset > 0 {
				out[p.Partition] = p.Offset
			}
		}
	}
	return out, nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// header is the value of r's header key, "" if it has none.
func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// poisonDetail lists the rows of poison_messages with their reasons, for
// a failure message.
func (c *cluster) poisonDetail(ctx context.Context, limit int) string {
	rows, err := c.db.QueryContext(ctx, `SELECT topic, message_id, class, reason FROM poison_messages ORDER BY first_seen_at LIMIT $1`, limit)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	out := ""
	for rows.Next() {
		var topic, id, class, reason string
		if err := rows.Scan(&topic, &id, &class, &reason); err != nil {
			return err.Error()
		}
		out += fmt.Sprintf("  poisoned %s/%s (%s): %s\n", topic, id, class, reason)
	}
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	rfdbin.Cleanup()
	os.Exit(code)
}
