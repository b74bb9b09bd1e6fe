package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"sigs.k8s.io/yaml"

	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/rfdbin"
)

// TestPrometheusScrape runs `rfd serve` (the binary the Dockerfile builds)
// on a temp SQLite file and a real Prometheus server (Debian's prometheus
// package) scraping it every second with the alert rules loaded, drives a
// short load through the API (user-management, checkup and order events,
// some of them out of order), then asks Prometheus's HTTP API for every
// metric operators watch and checks its value. Every dashboard query and
// every alert rule must also evaluate without error. CI installs
// prometheus (scripts/ensure-promtool); without it the test skips.
func TestPrometheusScrape(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not found (apt-get install prometheus): scrape test not run here; .ci/run installs it")
	}
	bin := rfdBinary(t)
	dir := t.TempDir()
	rfdAddr := freeAddr(t)
	env := cleanEnv(
		"RFD_DATABASE_URL=sqlite://"+filepath.Join(dir, "rfd.db"),
		"RFD_HTTP_ADDR="+rfdAddr,
		"RFD_SHUTDOWN_TIMEOUT=10s",
		"RFD_SQL_POLL_INTERVAL=50ms",
		"RFD_DELIVERY_POLL_INTERVAL=200ms",
		"RFD_LOG_LEVEL=warn",
	)
	run := func(args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rfd %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("migrate", "up")
	apiKey := ""
	for _, line := range strings.Split(run("apikey", "create", "--name", "scrape-test", "--scopes", "events:user-created,events:internal-login,events:checkup,events:order-history"), "\n") {
		if v, ok := strings.CutPrefix(line, "key:"); ok {
			apiKey = strings.TrimSpace(v)
		}
	}
	if apiKey == "" {
		t.Fatal("rfd apikey create printed no key")
	}

	start := time.Now()
	serve := startProcess(t, dir, env, bin, "serve")
	waitHTTP(t, "http://"+rfdAddr+"/readyz", 30*time.Second)

	promAddr := freeAddr(t)
	rules, err := filepath.Abs("../../deploy/monitoring/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: rfd
    static_configs:
      - targets: [%q]
`, rules, rfdAddr)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(promCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, dir, nil, promBin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	waitHTTP(t, "http://"+promAddr+"/-/ready", 30*time.Second)

	// The load: bounded, all on loopback.
	post := func(typ, ceID, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+rfdAddr+"/v1/events/"+typ, strings.NewReader(body))
		req.Header.Set("X-API-Key", apiKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("ce-id", ceID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /v1/events/%s: %d %s", typ, resp.StatusCode, b)
		}
	}
	now := time.Now().UTC().Format(time.RFC3339)
	for i, doc := range []string{"um-usr-scrape-1", "um-usr-scrape-2"} {
		post("user-created", fmt.Sprintf("uc-%d", i), fmt.Sprintf(`{"external_user_id":%q,"user_type":"referring_doctor","name":"Dr. Test %d",
"email":"doc%d@clinic.example","locale":"en","time_zone":"UTC","active":true,"updated_at":%q}`, doc, i, i, now))
	}
	for i := range 3 {
		post("internal-login", fmt.Sprintf("il-%d", i), fmt.Sprintf(`{"external_user_id":"um-usr-scrape-1","outcome":"success","occurred_at":%q,
"source_ip":"203.0.113.48","method":"password"}`, now))
	}
	for i := range 5 {
		post("checkup-events", fmt.Sprintf("ce-%d", i), fmt.Sprintf(`{"event_type":"result_available","checkup_id":"CHK-S-%d","order_id":"ORD-S-1",
"patient":{"ref":"HN-S-%d","display_name":"Synthetic Patient","birth_year":1970},
"referring_doctors":[{"external_user_id":"um-usr-scrape-1","role":"primary"}],"occurred_at":%q,
"result":{"version":1,"status":"final","critical":false,"tests":[{"code":"GLU","name":"Glucose","value":"90","unit":"mg/dL","flag":"N"}]}}`, i, i, now))
	}
	// Order events 3, then the late 2, then 4: one absorbed out of order.
	for _, seq := range []int{3, 2, 4} {
		post("order-history-events", fmt.Sprintf("oh-%d", seq), fmt.Sprintf(`{"order_id":"ORD-S-1","sequence":%d,"status":"in_progress",
"occurred_at":%q,"patient":{"ref":"HN-S-1"},"referring_doctors":[{"external_user_id":"um-usr-scrape-1"}]}`, seq, now))
		time.Sleep(300 * time.Millisecond)
	}
	// A producer that bypasses the API's validation writes a message that
	// is not JSON straight onto the checkup-events topic (a table on the
	// SQL transport): the consumer poisons it and the drain keeps it.
	poisonOne(t, filepath.Join(dir, "rfd.db"))
	for range 5 {
		resp, err := http.Get("http://" + rfdAddr + "/v1/notifications")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	prom := promClient{base: "http://" + promAddr}
	checks := []struct {
		what, query string
		ok          func(float64) bool
	}{
		{"API response times: ingest requests answered 202", `sum(rfd_http_request_duration_seconds_count{operation=~"ingest.+",status="202"})`, func(v float64) bool { return v == 13 }},
		{"API response times: unauthenticated list answered 401", `sum(rfd_http_request_duration_seconds_count{operation="listNotifications",status="401"})`, func(v float64) bool { return v == 5 }},
		{"API response times: p99 of ingestCheckupEvent within the buckets", `histogram_quantile(0.99, sum by (le) (rfd_http_request_duration_seconds_bucket{operation="ingestCheckupEvent"}))`, func(v float64) bool { return v > 0 && v <= 10 }},
		{"checkup lag in messages, caught up", `rfd_consumer_lag_messages{transport="sql",topic="checkup-events",group="rfd.checkup-events"}`, func(v float64) bool { return v == 0 }},
		{"checkup lag in seconds, caught up", `rfd_consumer_lag_seconds{transport="sql",topic="checkup-events",group="rfd.checkup-events"}`, func(v float64) bool { return v == 0 }},
		{"lag measured for all five consumers", `count(rfd_consumer_lag_messages)`, func(v float64) bool { return v == 5 }},
		{"lag measurement succeeds", `rfd_lag_scrape_success`, func(v float64) bool { return v == 1 }},
		{"checkup events processed", `sum(rfd_consumer_messages_total{consumer="checkup-events",result="processed"})`, func(v float64) bool { return v == 5 }},
		{"in-app deliveries delivered", `sum(rfd_deliveries_total{channel="in_app",status="delivered"})`, func(v float64) bool { return v >= 5 }},
		{"delivery success ratio", `sum(rfd_deliveries_total{status=~"sent|delivered"}) / sum(rfd_deliveries_total{status=~"sent|delivered|failed|undelivered"})`, func(v float64) bool { return v > 0 && v <= 1 }},
		{"user-created processed", `sum(rfd_consumer_messages_total{consumer="user-created",result="processed"})`, func(v float64) bool { return v == 2 }},
		{"internal-login processed", `sum(rfd_consumer_messages_total{consumer="internal-login",result="processed"})`, func(v float64) bool { return v == 3 }},
		{"user-created last success", `rfd_consumer_last_success_timestamp_seconds{consumer="user-created"}`, recent(start)},
		{"internal-login last success", `rfd_consumer_last_success_timestamp_seconds{consumer="internal-login"}`, recent(start)},
		{"order events processed", `sum(rfd_consumer_messages_total{consumer="order-history-events",result="processed"})`, func(v float64) bool { return v == 3 }},
		{"order events out of order absorbed", `rfd_order_events_out_of_order_total`, func(v float64) bool { return v == 1 }},
		{"order history last success", `rfd_consumer_last_success_timestamp_seconds{consumer="order-history-events"}`, recent(start)},
		{"poison depth by topic and class", `rfd_poison_pending{topic="checkup-events",reason="permanent"}`, func(v float64) bool { return v == 1 }},
		{"oldest pending poison age", `rfd_poison_oldest_pending_age_seconds`, func(v float64) bool { return v > 0 && v < 300 }},
		{"escalations past the SLA (none in this run)", `sum(rfd_escalations_sla_breached_total)`, func(v float64) bool { return v == 0 }},
		{"outbox backlog (SQL transport: nothing to relay)", `rfd_outbox_backlog`, func(v float64) bool { return v == 0 }},
		{"outbox oldest unrelayed age", `rfd_outbox_oldest_unrelayed_age_seconds`, func(v float64) bool { return v == 0 }},
	}
	deadline := time.Now().Add(45 * time.Second)
	for _, c := range checks {
		var last string
		for {
			v, err := prom.scalar(c.query)
			if err == nil && c.ok(v) {
				t.Logf("%s: %s = %g", c.what, c.query, v)
				break
			}
			last = fmt.Sprintf("value %g, err %v", v, err)
			if time.Now().After(deadline) {
				t.Errorf("%s: %s: %s", c.what, c.query, last)
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	// Every dashboard query and every alert rule evaluates in Prometheus.
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, err := os.ReadFile("../../deploy/monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			q := strings.ReplaceAll(tg.Expr, "$__rate_interval", "1m")
			if _, err := prom.query(q); err != nil {
				t.Errorf("dashboard panel %q: %s: %v", p.Title, q, err)
			}
		}
	}
	var rulesDoc struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
			} `json:"rules"`
		} `json:"groups"`
	}
	rb, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(rb, &rulesDoc); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, g := range rulesDoc.Groups {
		want += len(g.Rules)
	}
	var loaded struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := prom.get("/api/v1/rules", nil, &loaded); err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, g := range loaded.Data.Groups {
		for _, r := range g.Rules {
			got++
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if got != want {
		t.Errorf("Prometheus loaded %d rules, rules.yaml has %d", got, want)
	}

	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := serve.Wait(); err != nil {
		t.Errorf("rfd serve after SIGTERM: %v", err)
	}
}

func recent(since time.Time) func(float64) bool {
	return func(v float64) bool {
		ts := time.Unix(0, int64(v*1e9))
		return !ts.Before(since.Add(-time.Second)) && !ts.After(time.Now().Add(time.Second))
	}
}

// startProcess starts a subprocess that the test kills at its end (unless
// it was already waited for) and whose output is logged on failure.
func startProcess(t *testing.T, dir string, env []string, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			sc := bufio.NewScanner(&out)
			n := 0
			for sc.Scan() && n < 40 {
				t.Logf("%s: %s", filepath.Base(bin), sc.Text())
				n++
			}
		}
	})
	return cmd
}

func waitHTTP(t *testing.T, u string, timeout time.Duration) { rfdbin.WaitHTTP(t, u, timeout) }

// promClient asks Prometheus's HTTP API.
type promClient struct{ base string }

func (p promClient) get(path string, q url.Values, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (p promClient) query(q string) ([]promResult, error) {
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []promResult `json:"result"`
		} `json:"data"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {q}}, &r); err != nil {
		return nil, err
	}
	return r.Data.Result, nil
}

// scalar is the value of a query that must return one series.
func (p promClient) scalar(q string) (float64, error) {
	res, err := p.query(q)
	if err != nil {
		return math.NaN(), err
	}
	if len(res) != 1 {
		return math.NaN(), fmt.Errorf("%d series", len(res))
	}
	s, _ := res[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// poisonOne publishes one undecodable message to checkup-events in the
// SQLite database at path, as a producer writing to the topic table would.
func poisonOne(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps, err := sqlpubsub.New(db, nil, sqlpubsub.Options{SkipSchemaInitialization: true})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ps.Publisher()
	if err != nil {
		t.Fatal(err)
	}
	msg := message.NewMessage("ce-not-json", []byte("{not json"))
	msg.Metadata.Set("ce_id", "ce-not-json")
	if err := pub.Publish("checkup-events", msg); err != nil {
		t.Fatal(err)
	}
}
