package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/testkit/pgtest"
	"github.com/rfd-notify/rfd/test/chaos/ledger"
)

// long reports whether the long forms were asked for (RFD_CHAOS_LONG=1).
func long() bool { return os.Getenv("RFD_CHAOS_LONG") != "" }

// eventCount is RFD_CHAOS_EVENTS, else the long or the short form's count.
func eventCount(t testing.TB, short, longForm int) int {
	t.Helper()
	if v := os.Getenv("RFD_CHAOS_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			t.Fatalf("RFD_CHAOS_EVENTS=%q: want an integer of at least 10", v)
		}
		return n
	}
	if long() {
		return longForm
	}
	return short
}

// envFloat is a positive number from the environment, or def.
func envFloat(t testing.TB, name string, def float64) float64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return f
}

// disruption is what a run does to the cluster while events flow. It
// returns when ctx ends.
type disruption func(ctx context.Context, t testing.TB, c *cluster, rec *record)

// record is what the disruptions did, for the report and the excuses.
type record struct {
	mu       sync.Mutex
	kills    []kill
	restarts int
	notes    []string
}

type kill struct {
	role string
	at   time.Time
}

func (r *record) killed(role string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kills = append(r.kills, kill{role, at})
}

func (r *record) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// killsOf returns the kill times of role.
func (r *record) killsOf(role string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Time
	for _, k := range r.kills {
		if k.role == role {
			out = append(out, k.at)
		}
	}
	return out
}

// runSpec is one chaos run.
type runSpec struct {
	tag     string
	events  int
	doctors int
	rate    float64 // events published per second
	// disrupt runs from the first publish until the outcome is nearly
	// complete (or the deadline); nil disrupts nothing.
	disrupt disruption
	// excuse judges repeated provider calls; nil excuses none.
	excuse func(rec *record, hits map[ledger.Kind]map[string][]time.Time) ledger.Excuse
	// deadline bounds the whole run.
	deadline time.Duration
	// database, when set, provides the database instead of pgtest.
	database func(t testing.TB) string
	// extraRoles run beside the consumer roles and the worker.
	extraRoles [][]string
	// mutate, when set, changes the events before they are published
	// (run 5 makes some of them malformed).
	mutate func(t testing.TB, evs []event) []event
}

type outcome struct {
	report  ledger.Report
	rec     *record
	elapsed time.Duration
	c       *cluster
	// handed is when each event was first handed to the Kafka client.
	handed map[string]time.Time
}

// run runs spec and returns the ledger's report; it fails the test if the
// run does not finish within its deadline.
func run(t *testing.T, spec runSpec) outcome {
	t.Helper()
	start := time.Now()
	dbURL := ""
	if spec.database != nil {
		dbURL = spec.database(t)
	} else {
		dbURL = pgtest.NewDatabase(t)
	}
	brokers := startKafka(t)
	c := newCluster(t, dbURL, brokers)
	c.seedDoctors(spec.doctors)
	c.startRoles(spec.extraRoles...)

	l := ledger.New()
	evs := makeEvents(t, spec.tag, spec.events, spec.doctors)
	if spec.mutate != nil {
		evs = spec.mutate(t, evs)
	}
	prod := newProducer(t, brokers, l)
	ctx, cancel := context.WithTimeout(context.Background(), spec.deadline)
	defer cancel()

	rec := &record{}
	dctx, stopDisrupt := context.WithCancel(ctx)
	disrupted := make(chan struct{})
	go func() {
		defer close(disrupted)
		if spec.disrupt != nil {
			spec.disrupt(dctx, t, c, rec)
		}
	}()
	defer func() { stopDisrupt(); <-disrupted }()

	if err := prod.publish(ctx, evs, spec.rate, 5); err != nil {
		t.Fatalf("publish: %v", err)
	}
	published := time.Since(start)
	expected := len(l.Expected(kDeliverySent))
	// The events the consumers must take in (the malformed ones never reach
	// the inbox) and the malformed ones the poison drain must store.
	expectedIn, expectedPoison := len(l.Expected(kInbox)), len(l.Expected(kPoisonRow))
	t.Logf("%s: published %d events in %s; waiting for %d deliveries", spec.tag, spec.events, published.Round(time.Millisecond), expected)

	// Disruptions go on until 95% of the deliveries are sent, then stop,
	// and every role runs again to drain the rest.
	progress := func() (sent, inbox, poisoned int) {
		_ = c.db.QueryRowContext(ctx, `SELECT count(*) FROM deliveries WHERE status IN ('sent', 'delivered')`).Scan(&sent)
		_ = c.db.QueryRowContext(ctx, `SELECT count(*) FROM inbox WHERE consumer IN ('checkup-events', 'order-history-events')`).Scan(&inbox)
		_ = c.db.QueryRowContext(ctx, `SELECT count(*) FROM poison_messages`).Scan(&poisoned)
		return sent, inbox, poisoned
	}
	wait := func(what string, until func(sent, inbox, poisoned int) bool) {
		last := time.Now()
		for {
			sent, inbox, poisoned := progress()
			if until(sent, inbox, poisoned) {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: %s not reached within %s: %d of %d deliveries sent, %d of %d events in the inbox, %d of %d poisoned\n%s",
					spec.tag, what, spec.deadline, sent, expected, inbox, expectedIn, poisoned, expectedPoison, c.logTails())
			}
			if time.Since(last) > 10*time.Second {
				last = time.Now()
				t.Logf("%s: %d/%d deliveries sent, %d/%d events in, %d/%d poisoned, after %s", spec.tag, sent, expected, inbox, expectedIn,
					poisoned, expectedPoison, time.Since(start).Round(time.Second))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	wait("95% of the deliveries", func(sent, _, _ int) bool { return sent*100 >= expected*95 })
	stopDisrupt()
	<-disrupted
	for _, p := range c.procs {
		if !p.alive() {
			p.start(t)
		}
	}
	wait("every delivery", func(sent, inbox, poisoned int) bool {
		return sent >= expected && inbox >= expectedIn && poisoned >= expectedPoison
	})
	// Calls still in flight reach the providers, redeliveries settle.
	time.Sleep(2 * time.Second)
	elapsed := time.Since(start)

	obs, err := c.observe(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	var excuse ledger.Excuse
	if spec.excuse != nil {
		excuse = spec.excuse(rec, c.providerHits())
	}
	r := l.Check(obs, excuse)
	t.Logf("%s: %s in %s\n%s", spec.tag, r, elapsed.Round(time.Second), r.Detail())
	if kr := r.Kinds[kPoisonRow]; kr.Unexpected > 0 || kr.Lost > 0 {
		t.Logf("%s: poison table (first 20 rows):\n%s", spec.tag, c.poisonDetail(ctx, 20))
	}
	return outcome{report: r, rec: rec, elapsed: elapsed, c: c, handed: prod.handed}
}

func (c *cluster) logTails() string {
	out := ""
	for _, p := range c.procs {
		out += fmt.Sprintf("--- %s (started %d times)\n%s\n", p.name, p.starts, tail(p.log, 15))
	}
	return out
}

// --- run 1: kill -9 -----------------------------------------------------------------

// killAfterReady is how long a restarted role is left alone once ready.
const killAfterReady = 3 * time.Second

// killer SIGKILLs a random role (of those ready for killAfterReady) every
// 0.2-2s and restarts it at once.
func killer(ctx context.Context, t testing.TB, c *cluster, rec *record) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(200*time.Millisecond + rand.N(1800*time.Millisecond)):
		}
		// A random process of those ready for a while: one still
		// starting or rejoining its consumer group is left to get to
		// work, or on a loaded machine the roles never would.
		var p *proc
		for _, i := range rand.Perm(len(c.procs)) {
			if c.procs[i].upFor(killAfterReady) {
				p = c.procs[i]
				break
			}
		}
		if p == nil {
			continue
		}
		at := time.Now()
		if _, ok := p.signal(syscall.SIGKILL, 10*time.Second); !ok {
			rec.note("%s did not die of SIGKILL within 10s", p.name)
			continue
		}
		rec.killed(p.name, at)
		p.start(t)
		rec.mu.Lock()
		rec.restarts++
		rec.mu.Unlock()
	}
}

// inFlightSlack is how long before a provider recorded a call the process
// that made it may have been killed: the request was on its way (or
// waiting for the server's lock) when the kill landed.
const inFlightSlack = time.Second

// inFlightExcuse excuses a delivery's repeated provider calls when a
// send-notification process was killed between each call and the next:
// the kill landed between the provider call and the commit of its attempt,
// so the redelivered command called again. SMS billing is never excused.
func inFlightExcuse(rec *record, hits map[ledger.Kind]map[string][]time.Time) ledger.Excuse {
	kills := rec.killsOf("consume send-notification")
	return func(kind ledger.Kind, key string, n int) bool {
		ts := hits[kind][key]
		if len(ts) < 2 {
			return false
		}
		for i := 1; i < len(ts); i++ {
			killed := false
			for _, k := range kills {
				if !k.Before(ts[i-1].Add(-inFlightSlack)) && !k.After(ts[i]) {
					killed = true
					break
				}
			}
			if !killed {
				return false
			}
		}
		return true
	}
}

func TestKill9(t *testing.T) {
	n := eventCount(t, 20_000, 200_000) // the short and long forms
	o := run(t, runSpec{
		tag: "kill", events: n, doctors: 200, rate: envFloat(t, "RFD_CHAOS_RATE", 100),
		disrupt: killer, excuse: inFlightExcuse, deadline: deadlineFor(n),
	})
	kills := len(o.rec.kills)
	t.Logf("kill -9: %d kills (%v), %d in-flight provider calls repeated (excused), SMS billed twice: %d",
		kills, killsByRole(o.rec), o.report.Excused, o.report.Kinds[kSMSBilled].Duplicated)
	printSummary(t, "kill-9", o, fmt.Sprintf("kills=%d in_flight_repeats=%d sms_billed_twice=%d relayed_command_repeats=%d",
		kills, o.report.Excused, o.report.Kinds[kSMSBilled].Duplicated, o.c.commandRepeats))
	if !o.report.Pass() || o.report.Unexpected != 0 {
		t.Errorf("kill -9: %s\n%s%s", o.report, o.report.Detail(), o.c.repeatDetail(o.rec, o.report))
	}
	if kills == 0 {
		t.Error("kill -9: no process was killed")
	}
}

func killsByRole(rec *record) map[string]int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	m := map[string]int{}
	for _, k := range rec.kills {
		m[k.role]++
	}
	return m
}

// deadlineFor bounds a run of n events: ten minutes plus 60ms an event.
func deadlineFor(n int) time.Duration {
	return 10*time.Minute + time.Duration(n)*60*time.Millisecond
}

// printSummary prints the run's one-line result for the CI log.
func printSummary(t *testing.T, name string, o outcome, extra string) {
	line := fmt.Sprintf("chaos %s: %s; %s; %s", name, o.report, extra, o.elapsed.Round(time.Second))
	t.Log(line)
	fmt.Println(line)
}

// --- run 2: graceful rolling restart ---------------------------------------------------

// roller SIGTERMs each role in turn, waits for it to exit (it must exit 0
// within its shutdown timeout), restarts it and waits until it is ready
// before the next one.
func roller(ctx context.Context, t testing.TB, c *cluster, rec *record) {
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(500*time.Millisecond + rand.N(1000*time.Millisecond)):
		}
		p := c.procs[i%len(c.procs)]
		at := time.Now()
		err, exited := p.signal(syscall.SIGTERM, 25*time.Second)
		switch {
		case !exited:
			rec.note("%s did not exit within 25s of SIGTERM", p.name)
			_, _ = p.signal(syscall.SIGKILL, 5*time.Second)
		case err != nil:
			rec.note("%s exited with %v after SIGTERM", p.name, err)
		}
		rec.killed(p.name, at)
		p.start(t)
		rec.mu.Lock()
		rec.restarts++
		rec.mu.Unlock()
		if err := p.ready(60 * time.Second); err != nil {
			rec.note("%v", err)
		}
	}
}

func TestGracefulRollingRestart(t *testing.T) {
	n := eventCount(t, 600, 20_000)
	o := run(t, runSpec{
		tag: "roll", events: n, doctors: 200, rate: envFloat(t, "RFD_CHAOS_RATE", 100),
		disrupt: roller, deadline: deadlineFor(n),
	})
	restarts := len(o.rec.kills)
	printSummary(t, "graceful-rolling-restart", o, fmt.Sprintf("sigterm_restarts=%d (%v) relayed_command_repeats=%d", restarts, killsByRole(o.rec), o.c.commandRepeats))
	if o.c.commandRepeats != 0 {
		t.Errorf("rolling restart: %d send-notification commands relayed more than once", o.c.commandRepeats)
	}
	for _, note := range o.rec.notes {
		t.Errorf("rolling restart: %s", note)
	}
	// Zero duplicates of any kind: not even a repeated provider call.
	if !o.report.Pass() || o.report.Unexpected != 0 || o.report.Excused != 0 {
		t.Errorf("rolling restart: %s\n%s", o.report, o.report.Detail())
	}
	if restarts < len(roles) {
		t.Errorf("rolling restart: only %d restarts, want every role restarted at least once", restarts)
	}
}

// repeatDetail explains each unexcused repeated provider call of r: when
// the provider saw it, the send-notification kills around it and the
// attempts the database recorded.
func (c *cluster) repeatDetail(rec *record, r ledger.Report) string {
	hits := c.providerHits()
	kills := rec.killsOf("consume send-notification")
	out := ""
	for _, e := range r.Examples {
		var what, kind, key string
		if _, err := fmt.Sscanf(e, "%s %s %s %s", &what, new(string), &kind, &key); err != nil || what != "duplicated" {
			continue
		}
		ts := hits[ledger.Kind(kind)][key]
		out += fmt.Sprintf("  %s %s: provider calls at %v;", kind, key, fmtTimes(ts))
		for _, k := range kills {
			if len(ts) > 0 && k.After(ts[0].Add(-10*time.Second)) && k.Before(ts[len(ts)-1].Add(10*time.Second)) {
				out += fmt.Sprintf(" kill at %s;", k.Format("15:04:05.000"))
			}
		}
		rows, err := c.db.Query(`SELECT attempt, outcome, started_at, finished_at FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id`, key)
		if err == nil {
			for rows.Next() {
				var attempt int
				var outcome string
				var started, finished time.Time
				if rows.Scan(&attempt, &outcome, &started, &finished) == nil {
					out += fmt.Sprintf(" attempt %d %s %s-%s;", attempt, outcome, started.Format("15:04:05.000"), finished.Format("15:04:05.000"))
				}
			}
			_ = rows.Close()
		}
		out += "\n"
	}
	return out
}

func fmtTimes(ts []time.Time) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Format("15:04:05.000")
	}
	return out
}
