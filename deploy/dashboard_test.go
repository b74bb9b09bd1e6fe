package deploy_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// Dashboard is the part of Grafana's dashboard JSON model the test reads.
type Dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []Panel `json:"panels"`
}

// Panel is one Grafana panel.
type Panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
}

// LoadDashboard reads monitoring/grafana-dashboard.json.
func LoadDashboard(t *testing.T, path string) Dashboard {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

// dashboardRows are the rows the operators asked for, each with queries it
// must hold (by metric and selector).
var dashboardRows = map[string][]string{
	"1. API response times": {
		`histogram_quantile(0.99, sum by (operation, le) (rate(rfd_http_request_duration_seconds_bucket`,
		`sum by (status) (rate(rfd_http_request_duration_seconds_count`},
	"2. Checkup event processing lag": {`rfd_consumer_lag_messages`, `rfd_consumer_lag_seconds`},
	"3. Notification delivery success rate": {
		`sum by (channel) (rate(rfd_deliveries_total{status=~"sent|delivered"}`,
		`sum by (channel, status) (rate(rfd_deliveries_total`},
	"4. User-management event processing": {
		`rfd_consumer_messages_total{consumer=~"user-created|internal-login"}`,
		`rfd_consumer_last_success_timestamp_seconds{consumer=~"user-created|internal-login"}`},
	"5. Order history synchronisation": {
		`rfd_consumer_messages_total{consumer="order-history-events"}`, `rfd_order_events_out_of_order_total`,
		`rfd_consumer_last_success_timestamp_seconds{consumer="order-history-events"}`},
	"Pipeline: poison, outbox, escalations": {
		`rfd_poison_pending`, `rfd_poison_oldest_pending_age_seconds`, `rfd_outbox_backlog`,
		`rfd_outbox_oldest_unrelayed_age_seconds`, `rfd_escalations_sla_breached_total`},
}

func TestDashboard(t *testing.T) {
	d := LoadDashboard(t, "monitoring/grafana-dashboard.json")
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard without uid or title")
	}
	ids := map[int]bool{}
	exprs := map[string][]string{} // row -> expressions under it
	row := ""
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			row = p.Title
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q has no size", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") {
				t.Errorf("panel %q: unbalanced parentheses in %s", p.Title, tg.Expr)
			}
			exprs[row] = append(exprs[row], tg.Expr)
		}
	}
	for r, wants := range dashboardRows {
		got, ok := exprs[r]
		if !ok {
			t.Errorf("no row %q", r)
			continue
		}
		for _, w := range wants {
			found := false
			for _, e := range got {
				found = found || strings.Contains(e, w)
			}
			if !found {
				t.Errorf("row %q: no query with %s", r, w)
			}
		}
	}
	if len(exprs) != len(dashboardRows) {
		t.Errorf("%d rows with queries, want %d", len(exprs), len(dashboardRows))
	}
}
