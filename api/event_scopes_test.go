package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/events"
)

// apiKeyWithID creates an API key with scopes and returns it and its id.
func (f *fixture) apiKeyWithID(name string, scopes ...string) (secret, id string) {
	f.t.Helper()
	secret, k, err := f.server.Auth().APIKeys().Create(context.Background(), name, scopes, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return secret, k.ID
}

func checkupEvent(checkup, doctor string) map[string]any {
	return map[string]any{
		"event_type":        "checkup_completed",
		"checkup_id":        checkup,
		"patient":           map[string]any{"ref": "PT-" + checkup},
		"referring_doctors": []map[string]any{{"external_user_id": doctor}},
		"occurred_at":       "2026-11-25T03:00:00Z",
	}
}

func orderEvent(order, doctor string) map[string]any {
	return map[string]any{
		"order_id":          order,
		"sequence":          1,
		"status":            "completed",
		"occurred_at":       "2026-11-25T03:00:00Z",
		"patient":           map[string]any{"ref": "PT-" + order},
		"referring_doctors": []map[string]any{{"external_user_id": doctor}},
	}
}

func loginEvent(doctor string) map[string]any {
	return map[string]any{"external_user_id": doctor, "outcome": "success", "occurred_at": "2026-11-25T03:00:00Z"}
}

// TestEventIngestionIsScopedPerType: a key may send only the event types
// it was granted (403 problem+json otherwise, publishing nothing), so a lab
// feed cannot rewrite or deactivate a doctor through user-created; an
// existing events:write key keeps sending checkups and order history but
// no longer identities; and every ingested event names its key in
// ce_source.
func TestEventIngestionIsScopedPerType(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		cfg := f.env.Config
		f.env.EnsureTopics(t, cfg.TopicUserCreated, cfg.TopicCheckupEvents, cfg.TopicOrderHistoryEvents, cfg.TopicInternalLogin)
		f.registerDoctor("doc-a")
		users := f.subscribe(cfg.TopicUserCreated)
		checkups := f.subscribe(cfg.TopicCheckupEvents)

		lab, labID := f.apiKeyWithID("lab feed", auth.ScopeEventsCheckup)
		// A key issued before ingestion was scoped: the scope is stored as
		// an existing deployment's api_keys row has it.
		legacy, legacyID := f.apiKeyWithID("old feed", auth.ScopeEventsCheckup)
		if _, err := f.env.DB.ExecContext(context.Background(), `UPDATE api_keys SET scopes = 'events:write' WHERE id = ?`, legacyID); err != nil {
			t.Fatal(err)
		}
		um, umID := f.apiKeyWithID("user management", auth.ScopeEventsUserCreated)

		// Taking over doc-a: new e-mail and phone, or deactivation.
		hijack := doctorEvent("doc-a", "Dr. doc-a", true)
		hijack["email"], hijack["phone"] = "attacker@evil.example", "+66800000000"
		deactivate := doctorEvent("doc-a", "Dr. doc-a", false)
		for _, key := range []string{lab, legacy} {
			for _, body := range []map[string]any{hijack, deactivate} {
				p := f.do(http.MethodPost, "/v1/events/user-created", key, body, "ce-id", "hijack-doc-a").problem(t, http.StatusForbidden)
				if !strings.Contains(p.Detail, auth.ScopeEventsUserCreated) {
					t.Errorf("403 does not name the scope: %+v", p)
				}
			}
			p := f.do(http.MethodPost, "/v1/events/internal-login", key, loginEvent("doc-a")).problem(t, http.StatusForbidden)
			if !strings.Contains(p.Detail, auth.ScopeEventsInternalLogin) {
				t.Errorf("403 does not name the scope: %+v", p)
			}
		}
		f.do(http.MethodPost, "/v1/events/order-history-events", lab, orderEvent("ORD-SC-0", "doc-a")).problem(t, http.StatusForbidden)
		f.do(http.MethodPost, "/v1/events/checkup-events", um, checkupEvent("CHK-SC-0", "doc-a")).problem(t, http.StatusForbidden)

		// The refused events published nothing: the first message on the
		// topic is user management's, sent after them.
		var acc api.AcceptedEvent
		f.do(http.MethodPost, "/v1/events/user-created", um, doctorEvent("doc-b", "Dr. doc-b", true), "ce-id", "um-doc-b").
			ok(t, http.StatusAccepted, &acc)
		if want := "/rfd-notify/api-keys/" + umID; acc.Source != want {
			t.Errorf("source %q, want %q", acc.Source, want)
		}
		if m := receive(t, users); m.Metadata.Get(events.HeaderID) != "um-doc-b" {
			t.Fatalf("first user-created message is %v, want user management's", m.Metadata)
		}
		select {
		case m := <-users:
			t.Fatalf("a refused event was published: %v", m.Metadata)
		case <-time.After(300 * time.Millisecond):
		}
		// The audit log keeps which key sent it, after the message is gone.
		if n := f.scalar(`SELECT COUNT(*) FROM audit_log WHERE action = 'event.ingest' AND actor_type = 'api_key' AND actor_id = ?
			AND object_type = 'user-created' AND object_id = 'um-doc-b'`, umID); n != 1 {
			t.Errorf("%d audit rows for user management's event", n)
		}
		if n := f.scalar(`SELECT COUNT(*) FROM audit_log WHERE action = 'event.ingest' AND actor_id IN (?, ?)`, labID, legacyID); n != 0 {
			t.Errorf("%d audit rows of refused events", n)
		}
		if email, active := f.str(`SELECT email FROM doctors WHERE external_user_id = 'doc-a'`),
			f.scalar(`SELECT COUNT(*) FROM doctors WHERE external_user_id = 'doc-a' AND active`); email != "doc-a@clinic.example" || active != 1 {
			t.Fatalf("doc-a changed: email %q, active %d", email, active)
		}

		// What each key was granted goes through, naming the key (its id,
		// never its secret) as the event's source.
		for _, c := range []struct{ key, id, checkup string }{{lab, labID, "CHK-SC-1"}, {legacy, legacyID, "CHK-SC-2"}} {
			acc = api.AcceptedEvent{}
			r := f.do(http.MethodPost, "/v1/events/checkup-events", c.key, checkupEvent(c.checkup, "doc-a"))
			r.ok(t, http.StatusAccepted, &acc)
			want := "/rfd-notify/api-keys/" + c.id
			m := receive(t, checkups)
			if acc.Source != want || m.Metadata.Get(events.HeaderSource) != want {
				t.Errorf("source answered %q, stored %q, want %q", acc.Source, m.Metadata.Get(events.HeaderSource), want)
			}
			for k, v := range m.Metadata {
				if strings.Contains(v, c.key[len(auth.APIKeyPrefix):]) {
					t.Errorf("metadata %s carries the key's secret", k)
				}
			}
		}
		f.do(http.MethodPost, "/v1/events/order-history-events", legacy, orderEvent("ORD-SC-1", "doc-a")).ok(t, http.StatusAccepted, nil)
	})
}

// TestRetiredEventsWriteScopeIsNotIssued: no new key gets events:write;
// the refusal says what to grant instead.
func TestRetiredEventsWriteScopeIsNotIssued(t *testing.T) {
	f := newFixture(t, combinations[0])
	_, _, err := f.server.Auth().APIKeys().Create(context.Background(), "feed", []string{auth.ScopeEventsWrite}, nil)
	if err == nil || !strings.Contains(err.Error(), auth.ScopeEventsCheckup) {
		t.Fatalf("events:write: %v", err)
	}
}
