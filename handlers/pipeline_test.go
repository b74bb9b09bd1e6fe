package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
	"github.com/rfd-notify/rfd/outbox"
)

// combinations the consumer tests run on: the embedded default and the
// production path.
var combinations = []string{testenv.SQLiteSQL, testenv.PostgresKafka}

// pipeline is the four inbound consumers on the real router, with a clock
// the test sets, a reader of the send-notification topic and one of the
// poison topic.
type pipeline struct {
	t   *testing.T
	env *testenv.Env

	mu      sync.Mutex
	now     time.Time
	sends   []events.SendNotification
	poisons []*message.Message
}

func eachCombination(t *testing.T, fn func(t *testing.T, p *pipeline)) {
	t.Helper()
	for _, name := range combinations {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, newPipeline(t, name))
		})
	}
}

// The clock starts on a Wednesday at 10:00 in Bangkok: outside the quiet
// hours the tests use.
var startOfTest = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

func newPipeline(t *testing.T, name string, opts ...func(*config.Config)) *pipeline {
	t.Helper()
	env := testenv.New(t, name, opts...)
	p := &pipeline{t: t, env: env, now: startOfTest}
	cfg := env.Config
	env.EnsureTopics(t, cfg.TopicCheckupEvents, cfg.TopicOrderHistoryEvents, cfg.TopicUserCreated,
		cfg.TopicInternalLogin, cfg.TopicSendNotification, cfg.TopicPoison)

	notifier := notify.New(env.Outbox, cfg.TopicSendNotification, cfg.PortalURL, p.clock)
	set := handlers.Consumers(handlers.Deps{Config: cfg, Inbox: env.Inbox, Outbox: env.Outbox, Notifier: notifier, Now: p.clock})
	rt := env.NewRouter(t)
	for _, name := range []string{"checkup-events", "order-history-events", "user-created", "internal-login"} {
		h, ok := set[name]
		if !ok {
			t.Fatalf("no consumer %s", name)
		}
		if err := rt.AddConsumer(h); err != nil {
			t.Fatal(err)
		}
	}
	p.read(cfg.TopicSendNotification, "test-send-reader", func(m *message.Message) {
		cmd, err := events.DecodeSendNotification(m.Payload)
		if err != nil {
			t.Errorf("send-notification command does not decode: %v", err)
			return
		}
		if m.UUID != cmd.DeliveryID || m.Metadata.Get("ce_id") != cmd.DeliveryID {
			t.Errorf("command id %q / ce_id %q, want the delivery id %q", m.UUID, m.Metadata.Get("ce_id"), cmd.DeliveryID)
		}
		p.mu.Lock()
		p.sends = append(p.sends, cmd)
		p.mu.Unlock()
	})
	p.read(cfg.TopicPoison, "test-poison-reader", func(m *message.Message) {
		p.mu.Lock()
		p.poisons = append(p.poisons, m)
		p.mu.Unlock()
	})
	testenv.Run(t, rt)
	return p
}

func (p *pipeline) clock() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.now
}

func (p *pipeline) setClock(t time.Time) {
	p.mu.Lock()
	p.now = t
	p.mu.Unlock()
}

func (p *pipeline) read(topic, group string, fn func(*message.Message)) {
	p.env.Read(p.t, topic, group, fn)
}

// publish sends an inbound event as its producer would: JSON payload,
// CloudEvents headers, the aggregate id as the partition key.
func (p *pipeline) publish(topic, ceID, ceType, key string, payload any) {
	p.t.Helper()
	var body []byte
	switch v := payload.(type) {
	case []byte:
		body = v
	case string:
		body = []byte(v)
	default:
		var err error
		body, err = json.Marshal(v)
		if err != nil {
			p.t.Fatal(err)
		}
	}
	m := message.NewMessage(ceID, body)
	for k, v := range events.CloudEventMetadata(ceID, ceType, "test-producer", p.clock()) {
		m.Metadata.Set(k, v)
	}
	m.Metadata.Set(outbox.PartitionKeyKey, key)
	if err := p.env.Transport.Publisher().Publish(topic, m); err != nil {
		p.t.Fatalf("publish: %v", err)
	}
}

// processed waits until consumer has committed message id (its inbox row).
func (p *pipeline) processed(consumer, id string) {
	p.t.Helper()
	testenv.Eventually(p.t, 60*time.Second, consumer+" processes "+id, func() (bool, string) {
		var n int
		err := p.env.DB.QueryRowContext(context.Background(), `SELECT count(*) FROM inbox WHERE consumer = ? AND message_id = ?`, consumer, id).Scan(&n)
		if err != nil {
			return false, err.Error()
		}
		return n == 1, "not yet"
	})
}

func (p *pipeline) poisoned(id string) *message.Message {
	p.t.Helper()
	var found *message.Message
	testenv.Eventually(p.t, 60*time.Second, "poisoned "+id, func() (bool, string) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, m := range p.poisons {
			if m.UUID == id {
				found = m
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d poisoned so far", len(p.poisons))
	})
	return found
}

// commandsFor waits for want send-notification commands of notification id
// (a short settle afterwards catches any extra one) and returns them.
func (p *pipeline) commandsFor(notificationID string, want int) []events.SendNotification {
	p.t.Helper()
	get := func() []events.SendNotification {
		p.mu.Lock()
		defer p.mu.Unlock()
		var out []events.SendNotification
		for _, c := range p.sends {
			if c.NotificationID == notificationID {
				out = append(out, c)
			}
		}
		return out
	}
	testenv.Eventually(p.t, 60*time.Second, "commands of "+notificationID, func() (bool, string) {
		return len(get()) >= want, fmt.Sprintf("%d of %d", len(get()), want)
	})
	time.Sleep(200 * time.Millisecond)
	got := get()
	if len(got) != want {
		p.t.Fatalf("notification %s: %d send-notification commands, want %d: %+v", notificationID, len(got), want, got)
	}
	return got
}

func (p *pipeline) scalar(query string, args ...any) int {
	p.t.Helper()
	var n int
	if err := p.env.DB.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		p.t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (p *pipeline) str(query string, args ...any) string {
	p.t.Helper()
	var s string
	if err := p.env.DB.QueryRowContext(context.Background(), query, args...).Scan(&s); err != nil {
		p.t.Fatalf("%s: %v", query, err)
	}
	return s
}

// notification is a stored notification's headline fields.
type notification struct {
	ID, Type, Category, Priority, State, Title string
	SendAt                                     time.Time
}

func (p *pipeline) notificationsOf(externalUserID string) []notification {
	p.t.Helper()
	rows, err := p.env.DB.QueryContext(context.Background(), `SELECT n.id, n.type, n.category, n.priority, n.state, n.title, n.send_at
FROM notifications n JOIN doctors d ON d.id = n.doctor_id WHERE d.external_user_id = ? ORDER BY n.seq`, externalUserID)
	if err != nil {
		p.t.Fatal(err)
	}
	defer rows.Close()
	var out []notification
	for rows.Next() {
		var n notification
		var sendAt any
		if err := rows.Scan(&n.ID, &n.Type, &n.Category, &n.Priority, &n.State, &n.Title, &sendAt); err != nil {
			p.t.Fatal(err)
		}
		n.SendAt = asTime(p.t, sendAt)
		out = append(out, n)
	}
	return out
}

func asTime(t *testing.T, v any) time.Time {
	switch x := v.(type) {
	case time.Time:
		return x.UTC()
	case string:
		for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05"} {
			if tm, err := time.Parse(layout, x); err == nil {
				return tm.UTC()
			}
		}
	case []byte:
		return asTime(t, string(x))
	}
	t.Fatalf("cannot read time %T %v", v, v)
	return time.Time{}
}

// Fixtures.

func doctorEvent(ext, name string) map[string]any {
	return map[string]any{
		"external_user_id": ext,
		"user_type":        "referring_doctor",
		"name":             name,
		"licence_number":   "MD-" + ext,
		"specialty":        "Cardiology",
		"clinic":           map[string]any{"id": "CL-1", "name": "Sukhumvit Heart Clinic"},
		"email":            ext + "@clinic.example",
		"phone":            "+66812345678",
		"locale":           "en",
		"time_zone":        "Asia/Bangkok",
		"active":           true,
		"updated_at":       "2026-11-25T02:00:00Z",
	}
}

func (p *pipeline) registerDoctor(ext string) {
	p.t.Helper()
	id := "uc-" + ext
	p.publish(p.env.Config.TopicUserCreated, id, "rfd.user-created.v1", ext, doctorEvent(ext, "Dr. "+ext))
	p.processed("user-created", id)
}

func resultEvent(eventType, checkup string, version int, status string, critical bool, doctors ...string) map[string]any {
	refs := []map[string]any{}
	for _, d := range doctors {
		refs = append(refs, map[string]any{"external_user_id": d, "role": "primary"})
	}
	return map[string]any{
		"event_type":        eventType,
		"checkup_id":        checkup,
		"order_id":          "ORD-" + checkup,
		"patient":           map[string]any{"ref": "PT-1001", "display_name": "Somchai Jaidee", "birth_year": 1970},
		"referring_doctors": refs,
		"occurred_at":       "2026-11-25T02:30:00Z",
		"result": map[string]any{
			"version":  version,
			"status":   status,
			"critical": critical,
			"tests":    []map[string]any{{"code": "K", "name": "Potassium", "value": "6.9", "unit": "mmol/L", "flag": "HH"}},
		},
	}
}

func orderEvent(order string, seq int, status string, doctors ...string) map[string]any {
	refs := []map[string]any{}
	for _, d := range doctors {
		refs = append(refs, map[string]any{"external_user_id": d})
	}
	return map[string]any{
		"order_id":          order,
		"sequence":          seq,
		"status":            status,
		"occurred_at":       time.Date(2026, 11, 25, 1, seq, 0, 0, time.UTC).Format(time.RFC3339),
		"patient":           map[string]any{"ref": "PT-1001"},
		"referring_doctors": refs,
		"description":       "Lipid panel",
	}
}

func loginEvent(ext, outcome, ip string, at time.Time) map[string]any {
	return map[string]any{
		"external_user_id": ext,
		"outcome":          outcome,
		"occurred_at":      at.Format(time.RFC3339),
		"source_ip":        ip,
		"user_agent":       "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
		"method":           "password",
	}
}

func poisonReason(m *message.Message) string {
	return m.Metadata.Get(middleware.ReasonForPoisonedKey)
}
