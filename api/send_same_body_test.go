package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/auth"
)

// TestSendNotificationSameBodyWithoutKey: the documented promise "the same
// request never notifies twice" holds without an Idempotency-Key: the same
// body, however spelled, from the same API key answers 200 with
// created=false and the first notification (not a replay), concurrent
// copies make one notification, and once the 24 hours are over the same
// body notifies again. A different body, another API key, or distinct
// Idempotency-Keys are new requests.
func TestSendNotificationSameBodyWithoutKey(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-a")
		writer := f.apiKey("crm", auth.ScopeNotificationsWrite)
		count := func() int { return f.scalar(`SELECT COUNT(*) FROM notifications`) }
		before := count()

		body := announcement("doc-a", "Clinic closed on 5 December")
		var first, again api.SentNotification
		f.do(http.MethodPost, "/v1/notifications", writer, body).ok(t, http.StatusCreated, &first)
		raw, _ := json.MarshalIndent(body, "", "  ")
		resp := f.do(http.MethodPost, "/v1/notifications", writer, string(raw))
		resp.ok(t, http.StatusOK, &again)
		if !first.Created || again.Created || again.ID != first.ID || len(again.Notifications) != 1 || again.Notifications[0].ID != first.ID {
			t.Fatalf("first %+v, again %+v: want the same notification, created=false", first, again)
		}
		if resp.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("Idempotent-Replayed %q on a request without a key", resp.header.Get("Idempotent-Replayed"))
		}
		if n := count() - before; n != 1 {
			t.Fatalf("%d notifications for the same body, want 1", n)
		}

		// A different body and another API key are other requests.
		f.do(http.MethodPost, "/v1/notifications", writer, announcement("doc-a", "Clinic closed on 6 December")).ok(t, http.StatusCreated, nil)
		f.do(http.MethodPost, "/v1/notifications", f.apiKey("other crm", auth.ScopeNotificationsWrite), body).ok(t, http.StatusCreated, nil)
		// Distinct Idempotency-Keys say "send it again".
		f.do(http.MethodPost, "/v1/notifications", writer, body, "Idempotency-Key", "reminder-1").ok(t, http.StatusCreated, nil)
		f.do(http.MethodPost, "/v1/notifications", writer, body, "Idempotency-Key", "reminder-2").ok(t, http.StatusCreated, nil)
		if n := count() - before; n != 5 {
			t.Fatalf("%d notifications, want 5", n)
		}

		// Concurrent copies of a new body make one notification.
		raw, _ = json.Marshal(announcement("doc-a", "Concurrent"))
		const n = 8
		var wg sync.WaitGroup
		statuses := make([]int, n)
		ids := make([]string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPost, f.url+"/v1/notifications", bytes.NewReader(raw))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+writer)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				statuses[i] = resp.StatusCode
				var s api.SentNotification
				b, _ := io.ReadAll(resp.Body)
				_ = json.Unmarshal(b, &s)
				ids[i] = s.ID
			}()
		}
		wg.Wait()
		created := 0
		for i := range n {
			if statuses[i] == http.StatusCreated {
				created++
			}
			if (statuses[i] != http.StatusCreated && statuses[i] != http.StatusOK) || ids[i] != ids[0] {
				t.Errorf("request %d: %d %s (first %s)", i, statuses[i], ids[i], ids[0])
			}
		}
		if made := count() - before - 5; created != 1 || made != 1 {
			t.Fatalf("%d answered 201, %d notifications made: want 1 and 1", created, made)
		}

		// After the 24 hours the same body is a new notification.
		if _, err := f.env.DB.ExecContext(t.Context(), `UPDATE idempotency_keys SET expires_at = ?`, f.now.Add(-1)); err != nil {
			t.Fatal(err)
		}
		var later api.SentNotification
		f.do(http.MethodPost, "/v1/notifications", writer, body).ok(t, http.StatusCreated, &later)
		if !later.Created || later.ID == first.ID {
			t.Fatalf("after expiry: %+v, want a new notification", later)
		}
	})
}
