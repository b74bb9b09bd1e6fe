package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/platform/health"
	"github.com/rfd-notify/rfd/internal/roles"
)

// TestAuditOfPatientData: every read of patient data — a notification's
// detail, an order, a checkup, and the lists — leaves an audit row with the
// actor, action, object, time, source IP and outcome; a foreign id is
// recorded as not_found.
func TestAuditOfPatientData(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		seedDoctorA(f)
		f.registerDoctor("doc-b")
		tokA, tokB := f.token("doc-a"), f.token("doc-b")
		docA := f.str(`SELECT id FROM doctors WHERE external_user_id = 'doc-a'`)
		docB := f.str(`SELECT id FROM doctors WHERE external_user_id = 'doc-b'`)
		critical := f.str(`SELECT id FROM notifications WHERE checkup_id = 'CHK-2'`)
		start := time.Now().Add(-time.Minute)

		f.do(http.MethodGet, "/v1/notifications/"+critical, tokA, nil).ok(t, http.StatusOK, nil)
		f.do(http.MethodGet, "/v1/orders/ORD-CHK-1", tokA, nil).ok(t, http.StatusOK, nil)
		f.do(http.MethodGet, "/v1/checkups/CHK-1", tokA, nil).ok(t, http.StatusOK, nil)
		f.do(http.MethodGet, "/v1/notifications", tokA, nil).ok(t, http.StatusOK, nil)
		f.do(http.MethodGet, "/v1/orders", tokA, nil).ok(t, http.StatusOK, nil)
		f.do(http.MethodGet, "/v1/notifications/"+critical, tokB, nil).problem(t, http.StatusNotFound)
		f.do(http.MethodGet, "/v1/checkups/CHK-1", tokB, nil).problem(t, http.StatusNotFound)

		type row struct{ actor, action, object, outcome, ip string }
		rows, err := f.env.DB.QueryContext(context.Background(),
			`SELECT actor_type || ':' || actor_id, action, object_type || ':' || object_id, outcome, source_ip, occurred_at FROM audit_log ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []row
		for rows.Next() {
			var r row
			var at time.Time
			if err := rows.Scan(&r.actor, &r.action, &r.object, &r.outcome, &r.ip, &at); err != nil {
				t.Fatal(err)
			}
			if at.Before(start) || at.After(time.Now().Add(time.Minute)) {
				t.Errorf("audit time %s", at)
			}
			got = append(got, r)
		}
		want := []row{
			{"doctor:" + docA, "notification.view", "notification:" + critical, "success", "127.0.0.1"},
			{"doctor:" + docA, "order.view", "order:ORD-CHK-1", "success", "127.0.0.1"},
			{"doctor:" + docA, "checkup.view", "checkup:CHK-1", "success", "127.0.0.1"},
			{"doctor:" + docA, "notification.list", "notification:", "success", "127.0.0.1"},
			{"doctor:" + docA, "order.list", "order:", "success", "127.0.0.1"},
			{"doctor:" + docB, "notification.view", "notification:" + critical, "not_found", "127.0.0.1"},
			{"doctor:" + docB, "checkup.view", "checkup:CHK-1", "not_found", "127.0.0.1"},
		}
		if len(got) != len(want) {
			t.Fatalf("audit rows\n%v\nwant\n%v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("audit row %d = %+v, want %+v", i, got[i], want[i])
			}
		}
		if ids := f.str(`SELECT CAST(detail AS TEXT) FROM audit_log WHERE action = 'notification.list'`); !strings.Contains(ids, critical) {
			t.Errorf("list audit detail %s lacks the notifications shown", ids)
		}
	})
}

// TestAuditUnderConcurrentReads: reads outside a transaction share their
// audit commits (group commit), yet every one of them is answered only once
// its own row is stored: 40 concurrent list reads, 40 rows, each with the
// reader's ids.
func TestAuditUnderConcurrentReads(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		seedDoctorA(f)
		tok := f.token("doc-a")
		const n = 40
		var wg sync.WaitGroup
		statuses := make(chan int, n)
		for range n {
			wg.Go(func() {
				statuses <- f.do(http.MethodGet, "/v1/notifications", tok, nil).status
			})
		}
		wg.Wait()
		close(statuses)
		for st := range statuses {
			if st != http.StatusOK {
				t.Fatalf("list: %d", st)
			}
		}
		if got := f.scalar(`SELECT count(*) FROM audit_log WHERE action = 'notification.list' AND outcome = 'success' AND detail IS NOT NULL`); got != n {
			t.Fatalf("audit rows = %d, want %d", got, n)
		}
	})
}

// TestRequestLimits: unknown body fields, oversized bodies and page sizes
// over the cap are refused with problem details naming the field.
func TestRequestLimits(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		seedDoctorA(f)
		tok := f.token("doc-a")
		critical := f.str(`SELECT id FROM notifications WHERE checkup_id = 'CHK-2'`)

		p := f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"digest": "off", "bogus": true}).problem(t, http.StatusUnprocessableEntity)
		if !p.hasLocation("body.bogus") {
			t.Errorf("unknown field: %+v", p)
		}
		p = f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"quiet_hours": map[string]any{"start": "22:00", "end": "07:00", "tz": "UTC"}}).
			problem(t, http.StatusUnprocessableEntity)
		if !p.hasLocation("body.quiet_hours.tz") {
			t.Errorf("nested unknown field: %+v", p)
		}
		p = f.do(http.MethodPost, "/v1/notifications/"+critical+"/acknowledge", tok, map[string]any{"note": "ok", "by": "someone else"}).
			problem(t, http.StatusUnprocessableEntity)
		if !p.hasLocation("body.by") {
			t.Errorf("unknown ack field: %+v", p)
		}
		p = f.do(http.MethodPut, "/v1/me/devices/fcm-token-limits-000000", tok, map[string]any{"platform": "ios", "doctor_id": "x"}).
			problem(t, http.StatusUnprocessableEntity)
		if !p.hasLocation("body.doctor_id") {
			t.Errorf("unknown device field: %+v", p)
		}

		for _, q := range []string{"/v1/notifications?limit=101", "/v1/notifications?limit=0", "/v1/orders?limit=1000"} {
			p := f.do(http.MethodGet, q, tok, nil).problem(t, http.StatusUnprocessableEntity)
			if !p.hasLocation("query.limit") {
				t.Errorf("%s: %+v", q, p)
			}
		}
		f.do(http.MethodGet, "/v1/notifications?limit=100", tok, nil).ok(t, http.StatusOK, nil)
		p = f.do(http.MethodGet, "/v1/notifications?category=gossip", tok, nil).problem(t, http.StatusUnprocessableEntity)
		if !p.hasLocation("query.category") {
			t.Errorf("bad category: %+v", p)
		}

		big := `{"note":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`
		f.do(http.MethodPost, "/v1/notifications/"+critical+"/acknowledge", tok, big).problem(t, http.StatusRequestEntityTooLarge)
		f.do(http.MethodPatch, "/v1/me/preferences", tok, `{"digest":`).problem(t, http.StatusBadRequest)
		// Nothing of the refused requests took effect.
		if n := f.scalar(`SELECT count(*) FROM notifications WHERE acknowledged_at IS NOT NULL`); n != 0 {
			t.Errorf("%d acknowledged", n)
		}
	})
}

// TestDatabaseDown: with the database gone, doctors' requests are 503
// problems with Retry-After, not 500s — whether authentication or the
// operation meets the outage.
func TestDatabaseDown(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		seedDoctorA(f)
		tok := f.token("doc-a")
		serve := func(d api.Deps) string {
			srv, err := api.NewServer(withServices(t, d), &health.Checks{}, prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(srv.Handler())
			t.Cleanup(ts.Close)
			return ts.URL
		}
		down, closeDown, err := roles.OpenDB(context.Background(), f.env.Config)
		if err != nil {
			t.Fatal(err)
		}
		// Authentication meets the outage.
		whole := serve(api.Deps{Config: f.env.Config, DB: down})
		// The operation meets it (authentication still reaches the database).
		op := serve(api.Deps{Config: f.env.Config, DB: down, Auth: f.server.Auth()})
		call(t, whole, http.MethodGet, "/v1/me", tok, nil).ok(t, http.StatusOK, nil)
		closeDown()

		for _, c := range []struct{ base, method, path string }{
			{whole, http.MethodGet, "/v1/me"},
			{op, http.MethodGet, "/v1/me"},
			{op, http.MethodGet, "/v1/notifications"},
			{op, http.MethodGet, "/v1/dashboard"},
			{op, http.MethodGet, "/v1/orders/ORD-CHK-1"},
			{op, http.MethodPost, "/v1/notifications/read-all"},
		} {
			r := call(t, c.base, c.method, c.path, tok, nil)
			r.problem(t, http.StatusServiceUnavailable)
			if r.header.Get("Retry-After") == "" {
				t.Errorf("%s %s: 503 without Retry-After", c.method, c.path)
			}
		}
		// The service's own handle is unaffected.
		f.do(http.MethodGet, "/v1/me", tok, nil).ok(t, http.StatusOK, nil)
	})
}
