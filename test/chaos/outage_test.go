package chaos

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/test/chaos/ledger"
)

// outageLength is how long PostgreSQL stays down.
const outageLength = 10 * time.Second

// outageSeen is what the roles answered on /readyz during and after the
// outage.
type outageSeen struct {
	mu        sync.Mutex
	started   time.Time
	during    map[string]map[int]int // role -> status code (0: no answer) -> count, after the first second
	readyBack map[string]time.Duration
	exited    []string
}

func (o *outageSeen) saw(role string, code int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.during[role] == nil {
		o.during[role] = map[int]int{}
	}
	o.during[role][code]++
}

func readyzCode(addr string) int {
	cl := http.Client{Timeout: time.Second}
	resp, err := cl.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestDatabaseOutage is run 3: the test's own PostgreSQL is stopped for 10s
// once a quarter of the events are in. Meanwhile the API (and every role)
// answers /readyz with 503; afterwards every role is ready again without a
// restart, and nothing is lost or duplicated.
func TestDatabaseOutage(t *testing.T) {
	n := eventCount(t, 600, 20_000)
	pg := startPostgres(t)
	seen := &outageSeen{during: map[string]map[int]int{}, readyBack: map[string]time.Duration{}}
	outage := func(ctx context.Context, t testing.TB, c *cluster, rec *record) {
		for {
			var in int
			_ = c.db.QueryRowContext(ctx, `SELECT count(*) FROM inbox WHERE consumer IN ('checkup-events', 'order-history-events')`).Scan(&in)
			if in >= n/4 {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
		seen.started = time.Now()
		if err := pg.stop(); err != nil {
			rec.note("stop PostgreSQL: %v", err)
			return
		}
		rec.killed("postgres", seen.started)
		for time.Since(seen.started) < outageLength {
			for _, p := range c.procs {
				code := readyzCode(p.admin)
				if time.Since(seen.started) > time.Second {
					seen.saw(p.name, code)
				}
				if !p.alive() {
					seen.mu.Lock()
					seen.exited = append(seen.exited, p.name)
					seen.mu.Unlock()
				}
			}
			time.Sleep(250 * time.Millisecond)
		}
		if err := pg.startErr(); err != nil {
			rec.note("start PostgreSQL: %v", err)
			return
		}
		back := time.Now()
		for _, p := range c.procs {
			if err := p.ready(2 * time.Minute); err != nil {
				rec.note("after the outage: %v", err)
				continue
			}
			seen.mu.Lock()
			seen.readyBack[p.name] = time.Since(back)
			seen.mu.Unlock()
		}
	}
	// A provider call made just before or during the outage whose outcome
	// could not be committed is made again (same idempotency token, same
	// webhook-id, same Message-ID) once the database is back: such repeats
	// are counted apart, as for a kill between a call and its commit.
	acrossOutage := func(rec *record, hits map[ledger.Kind]map[string][]time.Time) ledger.Excuse {
		return func(kind ledger.Kind, key string, _ int) bool {
			if kind == kSMSBilled {
				return false
			}
			ts := hits[kind][key]
			end := seen.started.Add(outageLength + 5*time.Second)
			for i := 1; i < len(ts); i++ {
				if ts[i-1].After(end) || ts[i].Before(seen.started) {
					return false
				}
			}
			return len(ts) > 1
		}
	}
	o := run(t, runSpec{
		tag: "outage", events: n, doctors: 200, rate: envFloat(t, "RFD_CHAOS_RATE", 100),
		disrupt: outage, excuse: acrossOutage, deadline: deadlineFor(n),
		database:   func(testing.TB) string { return pg.URL() },
		extraRoles: [][]string{{"api"}},
	})
	for _, note := range o.rec.notes {
		t.Errorf("outage: %s", note)
	}
	if seen.started.IsZero() {
		t.Fatal("outage: PostgreSQL was never stopped")
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	for _, p := range o.c.procs {
		codes := seen.during[p.name]
		t.Logf("outage: %s answered /readyz %v during the outage, ready %s after it ended (started %d times)",
			p.name, codes, seen.readyBack[p.name].Round(time.Millisecond), p.starts)
		if codes[http.StatusServiceUnavailable] == 0 || codes[http.StatusOK] != 0 {
			t.Errorf("outage: %s answered /readyz %v during the outage, want 503 only", p.name, codes)
		}
		if p.starts != 1 {
			t.Errorf("outage: %s had to be restarted (%d starts): it should pause and resume", p.name, p.starts)
		}
	}
	if len(seen.exited) > 0 {
		t.Errorf("outage: processes exited during the outage: %v", seen.exited)
	}
	printSummary(t, "database-outage", o, fmt.Sprintf("postgres_down=%s api_readyz_during=%v in_flight_repeats=%d sms_billed_twice=%d",
		outageLength, seen.during["api"], o.report.Excused, o.report.Kinds[kSMSBilled].Duplicated))
	if !o.report.Pass() || o.report.Unexpected != 0 {
		t.Errorf("outage: %s\n%s", o.report, o.report.Detail())
	}
}
