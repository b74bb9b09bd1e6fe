package poison_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/contracts"
	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/msgerr"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/jobs/poison"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
	"github.com/rfd-notify/rfd/outbox"
	"github.com/rfd-notify/rfd/router"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness runs the real checkup-events consumer behind a gate that plays
// the deploy: while strict is set it rejects every event as the old,
// schema-strict build did (a permanent failure: poisoned at once); clearing
// it is the schema-tolerant redeploy. The poison drain runs beside it.
type harness struct {
	env    *testenv.Env
	svc    *poison.Service
	clock  *clock
	strict atomic.Bool
	// handled counts the events the real consumer ran on.
	handled atomic.Int32
}

func newHarness(t *testing.T, name string) *harness {
	t.Helper()
	env := testenv.New(t, name)
	cfg := env.Config
	h := &harness{env: env, clock: &clock{t: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)}}
	h.strict.Store(true)
	env.EnsureTopics(t, cfg.TopicCheckupEvents, cfg.TopicSendNotification, cfg.TopicPoison)
	h.svc = poison.New(env.DB, env.Outbox, h.clock.now)

	notifier := notify.New(env.Outbox, cfg.TopicSendNotification, cfg.PortalURL, h.clock.now)
	set := handlers.Consumers(handlers.Deps{Config: cfg, Inbox: env.Inbox, Outbox: env.Outbox, Notifier: notifier, Now: h.clock.now})
	checkups := set[config.ConsumerCheckupEvents]
	real := checkups.Handle
	checkups.Handle = func(msg *message.Message) error {
		if h.strict.Load() {
			return msgerr.Permanentf("checkup event: /result/tests/0/loinc: unknown field")
		}
		h.handled.Add(1)
		return real(msg)
	}
	rt := env.NewRouter(t)
	if err := rt.AddConsumer(checkups); err != nil {
		t.Fatal(err)
	}
	if err := rt.AddConsumer(router.Handler{Name: "poison-drain", Topic: cfg.TopicPoison, ConsumerGroup: cfg.ConsumerGroup("poison-drain"),
		Handle: h.svc.Handle, NoPoison: true}); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, rt)
	return h
}

func checkupEvent(t *testing.T) []byte {
	t.Helper()
	b, err := contracts.FS.ReadFile("checkup-event.example.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *harness) publish(t *testing.T, id string, payload []byte) {
	t.Helper()
	m := message.NewMessage(id, payload)
	for k, v := range events.CloudEventMetadata(id, events.TypeCheckupEvent, "test-producer", h.clock.now()) {
		m.Metadata.Set(k, v)
	}
	m.Metadata.Set(outbox.PartitionKeyKey, "CHK-2026-0004512")
	if err := h.env.Transport.Publisher().Publish(h.env.Config.TopicCheckupEvents, m); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) waitPoisoned(t *testing.T, times int) poison.Message {
	t.Helper()
	var got poison.Message
	testenv.Eventually(t, 60*time.Second, "poison row", func() (bool, string) {
		list, err := h.svc.List(context.Background(), poison.Filter{})
		if err != nil || len(list) != 1 {
			return false, fmt.Sprintf("%d rows, %v", len(list), err)
		}
		got = list[0]
		return got.TimesPoisoned == times, fmt.Sprintf("poisoned %d times", got.TimesPoisoned)
	})
	return got
}

func (h *harness) inboxRows(t *testing.T, consumer, id string) int {
	t.Helper()
	var n int
	if err := h.env.DB.NewRaw("SELECT COUNT(*) FROM inbox WHERE consumer = ? AND message_id = ?", consumer, id).Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The round trip: a bad event is poisoned (twice: one row, count 2), its
// cause is fixed (the schema-tolerant redeploy), replay → processed exactly
// once, state replayed; a second replay changes nothing.
func TestRoundTrip(t *testing.T) {
	for _, name := range testenv.Combinations {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, name)
			ctx := context.Background()
			const id = "evt-roundtrip-1"
			h.publish(t, id, checkupEvent(t))
			h.waitPoisoned(t, 1)
			h.clock.add(time.Minute)
			h.publish(t, id, checkupEvent(t))
			m := h.waitPoisoned(t, 2)

			if m.Topic != h.env.Config.TopicCheckupEvents || m.Handler != config.ConsumerCheckupEvents || m.Class != poison.ClassPermanent ||
				m.MessageID != id || m.State != poison.StatePending || m.Attempts != 1 {
				t.Fatalf("row = %+v", m)
			}
			if !strings.Contains(m.Reason, "unknown field") || m.Metadata["ce_id"] != id {
				t.Fatalf("reason %q metadata %v", m.Reason, m.Metadata)
			}
			if !m.LastSeenAt.After(m.FirstSeenAt) {
				t.Fatalf("first %v last %v", m.FirstSeenAt, m.LastSeenAt)
			}
			if n := h.inboxRows(t, config.ConsumerCheckupEvents, id); n != 0 {
				t.Fatalf("inbox rows before replay = %d", n)
			}

			// A dry run changes nothing.
			out, err := h.svc.Replay(ctx, poison.Actor{Type: "operator", ID: "tester"}, []string{m.ID}, "", true)
			if err != nil || len(out) != 1 || out[0].Result != poison.ResultWouldReplay {
				t.Fatalf("dry run: %+v %v", out, err)
			}

			h.strict.Store(false) // the schema-tolerant redeploy
			out, err = h.svc.Replay(ctx, poison.Actor{Type: "operator", ID: "tester"}, []string{m.ID}, "redeployed with tolerant schema", false)
			if err != nil || len(out) != 1 || out[0].Result != poison.ResultReplayed {
				t.Fatalf("replay: %+v %v", out, err)
			}
			testenv.Eventually(t, 60*time.Second, "replayed event processed", func() (bool, string) {
				return h.inboxRows(t, config.ConsumerCheckupEvents, id) == 1, "not yet"
			})
			var checkups int
			if err := h.env.DB.NewRaw("SELECT COUNT(*) FROM checkups WHERE id = ?", "CHK-2026-0004512").Scan(ctx, &checkups); err != nil || checkups != 1 {
				t.Fatalf("checkups = %d, %v", checkups, err)
			}

			// Replaying again is refused; the inbox would dedupe it anyway.
			out, err = h.svc.Replay(ctx, poison.Actor{Type: "operator", ID: "tester"}, []string{m.ID}, "", false)
			if err != nil || out[0].Result != poison.ResultSkipped {
				t.Fatalf("second replay: %+v %v", out, err)
			}
			// Give any stray duplicate time to show up.
			time.Sleep(300 * time.Millisecond)
			if n := h.handled.Load(); n != 1 {
				t.Fatalf("consumer ran %d times on the replay, want 1", n)
			}
			got, err := h.svc.Get(ctx, m.ID)
			if err != nil || got.State != poison.StateReplayed || got.StateChangedBy != "operator:tester" || got.StateReason != "redeployed with tolerant schema" {
				t.Fatalf("after replay: %+v %v", got, err)
			}
			var audits int
			if err := h.env.DB.NewRaw("SELECT COUNT(*) FROM audit_log WHERE action = 'poison.replay' AND object_id = ? AND actor_id = 'tester'", m.ID).Scan(ctx, &audits); err != nil || audits != 1 {
				t.Fatalf("audit rows = %d, %v", audits, err)
			}
		})
	}
}

// Discard, filters, the export and the metrics, on one poisoned message.
func TestDiscardListExportMetrics(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresSQL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, name)
			ctx := context.Background()
			h.publish(t, "evt-discard-1", checkupEvent(t))
			m := h.waitPoisoned(t, 1)

			for _, f := range []poison.Filter{{Topic: "checkup-events"}, {Reason: "permanent"}, {Reason: "unknown field"}, {State: "pending"}, {Since: m.FirstSeenAt.Add(-time.Second)}} {
				list, err := h.svc.List(ctx, f)
				if err != nil || len(list) != 1 {
					t.Fatalf("filter %+v: %d rows, %v", f, len(list), err)
				}
			}
			for _, f := range []poison.Filter{{Topic: "order-history-events"}, {Reason: "exhausted"}, {State: "replayed"}, {Since: m.LastSeenAt.Add(time.Hour)}} {
				list, err := h.svc.List(ctx, f)
				if err != nil || len(list) != 0 {
					t.Fatalf("filter %+v: %d rows, %v", f, len(list), err)
				}
			}
			if _, err := h.svc.List(ctx, poison.Filter{State: "bogus"}); err == nil {
				t.Fatal("bad state accepted")
			}

			reg := prometheus.NewRegistry()
			reg.MustRegister(poison.NewCollector(h.env.DB, func() time.Time { return h.clock.now().Add(90 * time.Second) }))
			if got := gauges(t, reg); got["rfd_poison_pending{reason=permanent,topic=checkup-events}"] != 1 || got["rfd_poison_oldest_pending_age_seconds"] != 90 {
				t.Fatalf("metrics = %v", got)
			}

			var buf bytes.Buffer
			n, err := h.svc.Export(ctx, &buf, poison.Filter{}, false)
			if err != nil || n != 1 {
				t.Fatalf("export: %d %v", n, err)
			}
			if strings.Contains(buf.String(), "Somchai") || strings.Contains(buf.String(), "HN-65-004821") || strings.Contains(buf.String(), "Fasting") {
				t.Fatalf("masked export carries patient data: %s", buf.String())
			}
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["payload_encoding"] != "masked" || !strings.Contains(rec["payload"].(string), "CHK-2026-0004512") {
				t.Fatalf("export record: %v %v", rec, err)
			}

			actor := poison.Actor{Type: "operator", ID: "tester"}
			if _, err := h.svc.Discard(ctx, actor, []string{m.ID}, "  ", false); err == nil {
				t.Fatal("discard without a reason accepted")
			}
			out, err := h.svc.Discard(ctx, actor, []string{m.ID, "nope"}, "test event from a misconfigured producer", false)
			if err != nil || len(out) != 2 || out[0].Result != poison.ResultDiscarded || out[1].Result != poison.ResultSkipped {
				t.Fatalf("discard: %+v %v", out, err)
			}
			out, err = h.svc.Replay(ctx, actor, []string{m.ID}, "", false)
			if err != nil || out[0].Result != poison.ResultSkipped || out[0].Detail != "state is discarded" {
				t.Fatalf("replay of discarded: %+v %v", out, err)
			}
			if got := gauges(t, reg); len(got) != 2 || got["rfd_poison_oldest_pending_age_seconds"] != 0 || got["rfd_poison_scrape_error"] != 0 {
				t.Fatalf("metrics after discard = %v", got)
			}
			var audits int
			if err := h.env.DB.NewRaw("SELECT COUNT(*) FROM audit_log WHERE action = 'poison.discard' AND object_id = ?", m.ID).Scan(ctx, &audits); err != nil || audits != 1 {
				t.Fatalf("audit rows = %d, %v", audits, err)
			}
		})
	}
}

func TestPrettyMasksPatientData(t *testing.T) {
	payload, err := contracts.FS.ReadFile("checkup-event.example.json")
	if err != nil {
		t.Fatal(err)
	}
	masked := poison.Pretty(payload, false)
	for _, phi := range []string{"Somchai", "HN-65-004821", "1968", "Fasting", "131", "above the reference"} {
		if strings.Contains(masked, phi) {
			t.Errorf("masked payload shows %q:\n%s", phi, masked)
		}
	}
	for _, keep := range []string{"CHK-2026-0004512", "um-usr-7f3a9c", "result_available", `"critical": false`} {
		if !strings.Contains(masked, keep) {
			t.Errorf("masked payload lost %q:\n%s", keep, masked)
		}
	}
	if revealed := poison.Pretty(payload, true); !strings.Contains(revealed, "Somchai") {
		t.Errorf("revealed payload hides the patient:\n%s", revealed)
	}
	if got := poison.Pretty([]byte("HN-1 Somchai not json"), false); strings.Contains(got, "Somchai") {
		t.Errorf("non-JSON payload shown: %s", got)
	}
}

// gauges flattens a registry into "name{label=value,…}" → value.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var parts []string
				for _, l := range m.GetLabel() {
					parts = append(parts, l.GetName()+"="+l.GetValue())
				}
				key += "{" + strings.Join(parts, ",") + "}"
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}
