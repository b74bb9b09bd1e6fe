package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/outbox"
)

// apiKey creates an API key with scopes and returns it.
func (f *fixture) apiKey(name string, scopes ...string) string {
	f.t.Helper()
	secret, _, err := f.server.Auth().APIKeys().Create(context.Background(), name, scopes, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return secret
}

func announcement(target string, title string) map[string]any {
	return map[string]any{
		"doctor_external_id": target,
		"category":           "announcements",
		"type":               "announcement",
		"data":               map[string]any{"announcement_title": title, "announcement_body": "The laboratory is closed on 5 December."},
	}
}

func TestSendNotificationIntegrators(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-a")
		writer := f.apiKey("crm", auth.ScopeNotificationsWrite)
		reader := f.apiKey("reader", auth.ScopeDoctorsRead)
		docA := f.str(`SELECT id FROM doctors WHERE external_user_id = 'doc-a'`)

		t.Run("by external id", func(t *testing.T) {
			var sent api.SentNotification
			f.do(http.MethodPost, "/v1/notifications", writer, announcement("doc-a", "Clinic closed")).ok(t, http.StatusCreated, &sent)
			if sent.ID == "" || sent.DoctorID != docA || !sent.Created || len(sent.Notifications) != 1 || sent.Notifications[0].ID != sent.ID {
				t.Fatalf("sent = %+v", sent)
			}
			if len(sent.Notifications[0].Deliveries) == 0 || sent.Notifications[0].Deliveries[0].Status != "queued" {
				t.Fatalf("deliveries = %+v", sent.Notifications[0].Deliveries)
			}
			if title := f.str(`SELECT title FROM notifications WHERE id = ?`, sent.ID); title != "Clinic closed" {
				t.Errorf("title = %q", title)
			}
			if n := f.scalar(`SELECT COUNT(*) FROM deliveries WHERE notification_id = ?`, sent.ID); n != len(sent.Notifications[0].Deliveries) {
				t.Errorf("%d deliveries stored, %d answered", n, len(sent.Notifications[0].Deliveries))
			}
			// The doctor sees it in the portal.
			var page api.NotificationPage
			f.do(http.MethodGet, "/v1/notifications", f.token("doc-a"), nil).ok(t, http.StatusOK, &page)
			if len(page.Items) == 0 || page.Items[0].ID != sent.ID || page.Items[0].Title != "Clinic closed" {
				t.Fatalf("portal = %+v", page.Items)
			}
		})

		t.Run("by id", func(t *testing.T) {
			body := announcement("", "By id")
			delete(body, "doctor_external_id")
			body["doctor_id"] = docA
			var sent api.SentNotification
			f.do(http.MethodPost, "/v1/notifications", writer, body).ok(t, http.StatusCreated, &sent)
			if sent.DoctorID != docA {
				t.Fatalf("sent = %+v", sent)
			}
		})

		t.Run("errors", func(t *testing.T) {
			f.do(http.MethodPost, "/v1/notifications", writer, announcement("doc-nobody", "x")).problem(t, http.StatusNotFound)
			both := announcement("doc-a", "x")
			both["doctor_id"] = docA
			if p := f.do(http.MethodPost, "/v1/notifications", writer, both).problem(t, http.StatusUnprocessableEntity); !p.hasLocation("body.doctor_id") {
				t.Errorf("problem %+v does not name body.doctor_id", p)
			}
			bad := announcement("doc-a", "x")
			bad["category"] = "gossip"
			if p := f.do(http.MethodPost, "/v1/notifications", writer, bad).problem(t, http.StatusUnprocessableEntity); !p.hasLocation("body.category") {
				t.Errorf("problem %+v does not name body.category", p)
			}
			unknown := announcement("doc-a", "x")
			unknown["surprise"] = true
			f.do(http.MethodPost, "/v1/notifications", writer, unknown).problem(t, http.StatusUnprocessableEntity)
		})

		t.Run("scope", func(t *testing.T) {
			f.do(http.MethodPost, "/v1/notifications", reader, announcement("doc-a", "x")).problem(t, http.StatusForbidden)
			f.do(http.MethodPost, "/v1/notifications", f.token("doc-a"), announcement("doc-a", "x")).problem(t, http.StatusUnauthorized)
		})

		t.Run("idempotency", func(t *testing.T) {
			before := f.scalar(`SELECT COUNT(*) FROM notifications`)
			body := announcement("doc-a", "Once only")
			first := f.do(http.MethodPost, "/v1/notifications", writer, body, "Idempotency-Key", "idem-1")
			first.ok(t, http.StatusCreated, nil)
			// The same body spelled differently is the same request.
			raw, _ := json.MarshalIndent(body, "", "    ")
			again := f.do(http.MethodPost, "/v1/notifications", writer, string(raw), "Idempotency-Key", "idem-1")
			again.ok(t, http.StatusCreated, nil)
			if !bytes.Equal(first.body, again.body) || again.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("replay %s (replayed %q), first %s", again.body, again.header.Get("Idempotent-Replayed"), first.body)
			}
			if n := f.scalar(`SELECT COUNT(*) FROM notifications`); n != before+1 {
				t.Fatalf("%d notifications made, want 1", n-before)
			}
			p := f.do(http.MethodPost, "/v1/notifications", writer, announcement("doc-a", "Something else"), "Idempotency-Key", "idem-1").
				problem(t, http.StatusConflict)
			if !strings.Contains(p.Detail, "Idempotency-Key") {
				t.Errorf("409 detail %q", p.Detail)
			}
			// Keys are per API key: another key's idem-1 is a new request.
			other := f.apiKey("other crm", auth.ScopeNotificationsWrite)
			f.do(http.MethodPost, "/v1/notifications", other, body, "Idempotency-Key", "idem-1").ok(t, http.StatusCreated, nil)
			// Only hashes are stored.
			if n := f.scalar(`SELECT COUNT(*) FROM idempotency_keys WHERE key_hash = 'idem-1'`); n != 0 {
				t.Error("the idempotency key is stored in clear")
			}
		})

		t.Run("concurrent requests with one key make one notification", func(t *testing.T) {
			before := f.scalar(`SELECT COUNT(*) FROM notifications`)
			raw, _ := json.Marshal(announcement("doc-a", "Concurrent"))
			const n = 8
			var wg sync.WaitGroup
			statuses := make([]int, n)
			bodies := make([][]byte, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequest(http.MethodPost, f.url+"/v1/notifications", bytes.NewReader(raw))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+writer)
					req.Header.Set("Idempotency-Key", "idem-concurrent")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return
					}
					defer resp.Body.Close()
					statuses[i] = resp.StatusCode
					bodies[i], _ = io.ReadAll(resp.Body)
				}()
			}
			wg.Wait()
			for i := range n {
				if statuses[i] != http.StatusCreated || !bytes.Equal(bodies[i], bodies[0]) {
					t.Errorf("request %d: %d %s (first %s)", i, statuses[i], bodies[i], bodies[0])
				}
			}
			if made := f.scalar(`SELECT COUNT(*) FROM notifications`) - before; made != 1 {
				t.Fatalf("%d notifications made, want 1", made)
			}
		})
	})
}

// subscribe reads topic in a consumer group of its own.
func (f *fixture) subscribe(topic string) <-chan *message.Message {
	f.t.Helper()
	sub, err := f.env.Transport.Subscriber("api-test-" + topic)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		f.t.Fatal(err)
	}
	out := make(chan *message.Message, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ch {
			out <- m
			m.Ack()
		}
	}()
	f.t.Cleanup(func() { cancel(); _ = sub.Close(); <-done })
	return out
}

func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no message on the topic")
		return nil
	}
}

func TestIngestEventIntegrators(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		cfg := f.env.Config
		f.env.EnsureTopics(t, cfg.TopicUserCreated, cfg.TopicCheckupEvents, cfg.TopicOrderHistoryEvents, cfg.TopicInternalLogin)
		feed, feedID := f.apiKeyWithID("lab feed", auth.ScopeEventsUserCreated, auth.ScopeEventsCheckup)
		source := "/rfd-notify/api-keys/" + feedID
		writer := f.apiKey("crm", auth.ScopeNotificationsWrite)

		t.Run("user-created with ce-id", func(t *testing.T) {
			users := f.subscribe(cfg.TopicUserCreated)
			ev := doctorEvent("doc-http", "Dr. HTTP", true)
			var acc api.AcceptedEvent
			f.do(http.MethodPost, "/v1/events/user-created", feed, ev, "ce-id", "user-doc-http-1").ok(t, http.StatusAccepted, &acc)
			if acc.ID != "user-doc-http-1" || acc.Type != events.TypeUserCreated || acc.Topic != cfg.TopicUserCreated || acc.Source != source {
				t.Fatalf("accepted = %+v", acc)
			}
			m := receive(t, users)
			md := m.Metadata
			if md.Get(events.HeaderID) != "user-doc-http-1" || md.Get(events.HeaderType) != events.TypeUserCreated ||
				md.Get(events.HeaderSource) != source || md.Get(events.HeaderTime) == "" || md.Get(events.HeaderSpecVersion) != "1.0" ||
				md.Get(outbox.PartitionKeyKey) != "doc-http" {
				t.Fatalf("metadata = %v", md)
			}
			got, err := events.DecodeUserCreated(m.Payload)
			if err != nil || got.ExternalUserID != "doc-http" || got.Name != "Dr. HTTP" {
				t.Fatalf("payload %s: %v", m.Payload, err)
			}
			// The consumers' inbox deduplicates on the message id: the same
			// key re-sending the same ce-id without the first request's
			// Idempotency-Key gets the same one, so it is acted on once;
			// another key (another source) using that ce-id gets another.
			f.do(http.MethodPost, "/v1/events/user-created", feed, ev, "ce-id", "user-doc-http-1").ok(t, http.StatusAccepted, &acc)
			if again := receive(t, users); again.UUID != m.UUID {
				t.Fatalf("re-sent message id = %q, want %q", again.UUID, m.UUID)
			}
			other := f.apiKey("other lab", auth.ScopeEventsUserCreated)
			f.do(http.MethodPost, "/v1/events/user-created", other, ev, "ce-id", "user-doc-http-1").ok(t, http.StatusAccepted, &acc)
			if theirs := receive(t, users); theirs.UUID == m.UUID || theirs.Metadata.Get(events.HeaderID) != "user-doc-http-1" {
				t.Fatalf("another key's event: message id %q (first %q), ce_id %q", theirs.UUID, m.UUID, theirs.Metadata.Get(events.HeaderID))
			}
		})

		t.Run("checkup event with Idempotency-Key", func(t *testing.T) {
			checkups := f.subscribe(cfg.TopicCheckupEvents)
			ev := map[string]any{
				"event_type":        "checkup_completed",
				"checkup_id":        "CHK-HTTP-1",
				"patient":           map[string]any{"ref": "PT-HTTP-1"},
				"referring_doctors": []map[string]any{{"external_user_id": "doc-http"}},
				"occurred_at":       "2026-11-25T03:00:00Z",
			}
			first := f.do(http.MethodPost, "/v1/events/checkup-events", feed, ev, "Idempotency-Key", "chk-http-1")
			var acc api.AcceptedEvent
			first.ok(t, http.StatusAccepted, &acc)
			if acc.ID != "chk-http-1" {
				t.Fatalf("id %q, want the Idempotency-Key", acc.ID)
			}
			m := receive(t, checkups)
			if m.Metadata.Get(events.HeaderID) != "chk-http-1" || m.Metadata.Get(outbox.PartitionKeyKey) != "CHK-HTTP-1" ||
				m.Metadata.Get(events.HeaderType) != events.TypeCheckupEvent {
				t.Fatalf("metadata = %v", m.Metadata)
			}
			again := f.do(http.MethodPost, "/v1/events/checkup-events", feed, ev, "Idempotency-Key", "chk-http-1")
			again.ok(t, http.StatusAccepted, nil)
			if !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("replay %s", again.body)
			}
			select {
			case dup := <-checkups:
				t.Fatalf("a replay published again: %v", dup.Metadata)
			case <-time.After(500 * time.Millisecond):
			}
			ev["checkup_id"] = "CHK-HTTP-2"
			f.do(http.MethodPost, "/v1/events/checkup-events", feed, ev, "Idempotency-Key", "chk-http-1").problem(t, http.StatusConflict)

			// Without any id, a new UUID.
			ev["checkup_id"] = "CHK-HTTP-3"
			f.do(http.MethodPost, "/v1/events/checkup-events", feed, ev).ok(t, http.StatusAccepted, &acc)
			if len(acc.ID) != 36 {
				t.Errorf("generated id %q", acc.ID)
			}
			if m := receive(t, checkups); m.Metadata.Get(events.HeaderID) != acc.ID {
				t.Errorf("ce_id %q, answered %q", m.Metadata.Get(events.HeaderID), acc.ID)
			}
		})

		t.Run("a bad event is 422 naming the field", func(t *testing.T) {
			ev := map[string]any{
				"event_type":        "result_available",
				"checkup_id":        "CHK-BAD",
				"patient":           map[string]any{"ref": "PT-BAD", "display_name": "Secret Patientname"},
				"referring_doctors": []map[string]any{{"external_user_id": "doc-http"}},
				"occurred_at":       "2026-11-25T03:00:00Z",
				"result":            map[string]any{"version": 0, "status": "final"},
			}
			r := f.do(http.MethodPost, "/v1/events/checkup-events", feed, ev)
			p := r.problem(t, http.StatusUnprocessableEntity)
			if !p.hasLocation("body.result.version") {
				t.Errorf("problem %+v does not name body.result.version", p)
			}
			if strings.Contains(string(r.body), "Secret Patientname") {
				t.Errorf("the problem quotes the payload: %s", r.body)
			}
			delete(ev, "result")
			ev["event_type"] = "checkup_completed"
			delete(ev["patient"].(map[string]any), "ref")
			if p := f.do(http.MethodPost, "/v1/events/checkup-events", feed, ev).problem(t, http.StatusUnprocessableEntity); !p.hasLocation("body.patient.ref") {
				t.Errorf("problem %+v does not name body.patient.ref", p)
			}
			f.do(http.MethodPost, "/v1/events/checkup-events", feed, `{"checkup_id": `).problem(t, http.StatusBadRequest)
			f.do(http.MethodPost, "/v1/events/gossip", feed, `{}`).problem(t, http.StatusUnprocessableEntity)
		})

		t.Run("scope", func(t *testing.T) {
			f.do(http.MethodPost, "/v1/events/user-created", writer, doctorEvent("doc-x", "Dr. X", true)).problem(t, http.StatusForbidden)
		})
	})
}

func TestDeliveriesIntegrators(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-a")
		writer := f.apiKey("crm", auth.ScopeNotificationsWrite)
		operator := f.apiKey("support", auth.ScopeDeliveriesRead)
		reader := f.apiKey("reader", auth.ScopeDoctorsRead)
		feed := f.apiKey("feed", auth.ScopeEventsCheckup)
		var sent api.SentNotification
		f.do(http.MethodPost, "/v1/notifications", writer, announcement("doc-a", "Track me")).ok(t, http.StatusCreated, &sent)
		q := sent.Notifications[0].Deliveries[0]
		started := time.Date(2026, 11, 25, 3, 0, 1, 0, time.UTC)
		if _, err := f.env.DB.ExecContext(context.Background(), `INSERT INTO delivery_attempts (delivery_id, attempt, provider, provider_message_id, outcome, reason_code, error, started_at, finished_at)
VALUES (?, 1, 'smtp', 'msg-1', 'transient', 'timeout', 'stored text', ?, ?)`, q.ID, started, started.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.env.DB.ExecContext(context.Background(), `UPDATE deliveries SET status = 'undelivered', reason_code = 'timeout', status_reason = 'stored text', attempt = 1 WHERE id = ?`, q.ID); err != nil {
			t.Fatal(err)
		}

		for _, key := range []string{writer, operator} {
			var d api.Delivery
			f.do(http.MethodGet, "/v1/deliveries/"+q.ID, key, nil).ok(t, http.StatusOK, &d)
			// The messages come from the code, never from what is stored.
			if d.ID != q.ID || d.NotificationID != sent.ID || d.Channel != q.Channel || d.Status != "undelivered" ||
				d.ReasonCode != "timeout" || d.Reason != "The provider did not answer in time." ||
				d.Attempt != 1 || d.CreatedAt.IsZero() || d.UpdatedAt.IsZero() {
				t.Fatalf("delivery = %+v", d)
			}
			if len(d.Attempts) != 1 || d.Attempts[0].Provider != "smtp" || d.Attempts[0].Outcome != "transient" || !d.Attempts[0].StartedAt.Equal(started) ||
				d.Attempts[0].ReasonCode != "timeout" || d.Attempts[0].Error != "The provider did not answer in time." {
				t.Fatalf("attempts = %+v", d.Attempts)
			}
		}
		f.do(http.MethodGet, "/v1/deliveries/"+q.ID, reader, nil).problem(t, http.StatusForbidden)
		f.do(http.MethodGet, "/v1/deliveries/"+q.ID, feed, nil).problem(t, http.StatusForbidden)
		f.do(http.MethodGet, "/v1/deliveries/no-such-delivery", writer, nil).problem(t, http.StatusNotFound)
		f.do(http.MethodGet, "/v1/deliveries/"+q.ID, f.token("doc-a"), nil).problem(t, http.StatusUnauthorized)
	})
}

func TestWebhooksIntegrators(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-a")
		docA := f.str(`SELECT id FROM doctors WHERE external_user_id = 'doc-a'`)
		writer := f.apiKey("crm", auth.ScopeNotificationsWrite)
		other := f.apiKey("other crm", auth.ScopeNotificationsWrite)
		feed := f.apiKey("feed", auth.ScopeEventsCheckup)

		var created api.WebhookWithSecret
		r := f.do(http.MethodPost, "/v1/webhooks", writer, map[string]any{"doctor_external_id": "doc-a", "url": "https://crm.clinic.example/hooks/rfd"})
		r.ok(t, http.StatusCreated, &created)
		if created.ID == "" || created.DoctorID == nil || *created.DoctorID != docA || !strings.HasPrefix(created.Secret, "whsec_") ||
			created.URL != "https://crm.clinic.example/hooks/rfd" || created.Rotating {
			t.Fatalf("created = %+v", created)
		}
		var clinic api.WebhookWithSecret
		f.do(http.MethodPost, "/v1/webhooks", writer, map[string]any{"clinic": "Sukhumvit Heart Clinic", "url": "https://clinic.example/hook"}).
			ok(t, http.StatusCreated, &clinic)

		t.Run("list hides secrets", func(t *testing.T) {
			r := f.do(http.MethodGet, "/v1/webhooks", writer, nil)
			var page api.WebhookPage
			r.ok(t, http.StatusOK, &page)
			if len(page.Items) != 2 {
				t.Fatalf("items = %+v", page.Items)
			}
			if strings.Contains(string(r.body), created.Secret) || strings.Contains(string(r.body), "whsec_") || strings.Contains(string(r.body), "secret\"") {
				t.Fatalf("the list shows a secret: %s", r.body)
			}
			page = api.WebhookPage{}
			f.do(http.MethodGet, "/v1/webhooks?limit=1", writer, nil).ok(t, http.StatusOK, &page)
			if len(page.Items) != 1 || page.NextCursor == "" {
				t.Fatalf("first page = %+v", page)
			}
			first := page.Items[0].ID
			cursor := page.NextCursor
			page = api.WebhookPage{}
			f.do(http.MethodGet, "/v1/webhooks?limit=1&cursor="+cursor, writer, nil).ok(t, http.StatusOK, &page)
			if len(page.Items) != 1 || page.Items[0].ID == first || page.NextCursor != "" {
				t.Fatalf("second page = %+v", page)
			}
			// Another integrator sees none of them.
			page = api.WebhookPage{}
			f.do(http.MethodGet, "/v1/webhooks", other, nil).ok(t, http.StatusOK, &page)
			if len(page.Items) != 0 {
				t.Fatalf("another key lists %+v", page.Items)
			}
		})

		t.Run("rotate keeps the previous secret", func(t *testing.T) {
			f.do(http.MethodPost, "/v1/webhooks/"+created.ID+"/rotate", other, nil).problem(t, http.StatusNotFound)
			var rotated api.WebhookWithSecret
			f.do(http.MethodPost, "/v1/webhooks/"+created.ID+"/rotate", writer, nil).ok(t, http.StatusOK, &rotated)
			if rotated.ID != created.ID || rotated.Secret == created.Secret || !strings.HasPrefix(rotated.Secret, "whsec_") || !rotated.Rotating {
				t.Fatalf("rotated = %+v", rotated)
			}
			if prev := f.str(`SELECT previous_secret FROM webhook_endpoints WHERE id = ?`, created.ID); prev != created.Secret {
				t.Fatal("the previous secret was not kept")
			}
			if cur := f.str(`SELECT secret FROM webhook_endpoints WHERE id = ?`, created.ID); cur != rotated.Secret {
				t.Fatal("the new secret was not stored")
			}
		})

		t.Run("errors and scope", func(t *testing.T) {
			if p := f.do(http.MethodPost, "/v1/webhooks", writer, map[string]any{"doctor_id": docA, "url": "http://crm.clinic.example/hook"}).
				problem(t, http.StatusUnprocessableEntity); !p.hasLocation("body.url") {
				t.Errorf("problem %+v does not name body.url", p)
			}
			if p := f.do(http.MethodPost, "/v1/webhooks", writer, map[string]any{"doctor_id": docA, "clinic": "x", "url": "https://a.example/"}).
				problem(t, http.StatusUnprocessableEntity); !p.hasLocation("body.doctor_id") {
				t.Errorf("problem %+v does not name body.doctor_id", p)
			}
			f.do(http.MethodPost, "/v1/webhooks", writer, map[string]any{"doctor_external_id": "doc-nobody", "url": "https://a.example/"}).
				problem(t, http.StatusNotFound)
			f.do(http.MethodPost, "/v1/webhooks", feed, map[string]any{"doctor_id": docA, "url": "https://a.example/"}).problem(t, http.StatusForbidden)
			f.do(http.MethodGet, "/v1/webhooks", feed, nil).problem(t, http.StatusForbidden)
			f.do(http.MethodDelete, "/v1/webhooks/"+created.ID, feed, nil).problem(t, http.StatusForbidden)
			f.do(http.MethodPost, "/v1/webhooks/"+created.ID+"/rotate", feed, nil).problem(t, http.StatusForbidden)
		})

		t.Run("delete", func(t *testing.T) {
			f.do(http.MethodDelete, "/v1/webhooks/"+created.ID, other, nil).problem(t, http.StatusNotFound)
			f.do(http.MethodDelete, "/v1/webhooks/"+created.ID, writer, nil).ok(t, http.StatusNoContent, nil)
			f.do(http.MethodDelete, "/v1/webhooks/"+created.ID, writer, nil).problem(t, http.StatusNotFound)
			if n := f.scalar(`SELECT COUNT(*) FROM webhook_endpoints WHERE id = ?`, created.ID); n != 0 {
				t.Fatal("the endpoint is still stored")
			}
		})
	})
}

func TestLoopbackWebhooksIntegrators(t *testing.T) {
	f := newFixture(t, combinations[0], func(c *config.Config) { c.WebhookAllowLoopback = true })
	writer := f.apiKey("crm", auth.ScopeNotificationsWrite)
	f.do(http.MethodPost, "/v1/webhooks", writer, map[string]any{"clinic": "Test", "url": "http://127.0.0.1:9999/hook"}).ok(t, http.StatusCreated, nil)
}
