// Package ledger is the bookkeeping of the crash and fault runs: the harness
// records every event it sends with the effects the event must have, then
// hands the ledger what it observed in the database, on the topics and at
// the provider servers, and gets back how many effects were lost,
// duplicated or unexpected.
//
// An effect is a (kind, key) pair: ("checkup", "CHK-1"),
// ("notification", "checkup/CHK-1/result/1|to:doc-1"),
// ("email", "<delivery id>"). Each must be observed exactly once. Some kinds
// tolerate a repeat the run can explain (a process killed between a provider
// call and its commit re-sends the call): the run passes an Excuse, and
// excused repeats are counted apart, never as passes of lost effects.
package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Kind names a sort of effect.
type Kind string

// Effect is one thing an event must cause exactly once.
type Effect struct {
	Kind Kind
	Key  string
}

// Ledger records what was sent. It is safe for concurrent use.
type Ledger struct {
	mu          sync.Mutex
	sent        map[string]bool            // event id -> sent
	published   int                        // publishes, republishes included
	republished int                        // deliberate second publishes of an event id
	expect      map[Kind]map[string]string // kind -> key -> the event id that causes it
}

// New returns an empty ledger.
func New() *Ledger {
	return &Ledger{sent: map[string]bool{}, expect: map[Kind]map[string]string{}}
}

// Sent records one publish of eventID and the effects it must have. A
// second call with the same id is a deliberate republish: it must change
// nothing, so its effects must be the same.
func (l *Ledger) Sent(eventID string, effects ...Effect) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.published++
	if l.sent[eventID] {
		l.republished++
		return
	}
	l.sent[eventID] = true
	for _, e := range effects {
		m := l.expect[e.Kind]
		if m == nil {
			m = map[string]string{}
			l.expect[e.Kind] = m
		}
		m[e.Key] = eventID
	}
}

// Expected returns the keys expected of kind.
func (l *Ledger) Expected(kind Kind) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.expect[kind]))
}

// Counts are the observed occurrences of one kind's effects by key.
type Counts map[string]int

// Observed is what the run saw, by kind. A kind that is expected but
// absent here counts all of its effects lost.
type Observed map[Kind]Counts

// Excuse reports whether count occurrences of (kind, key) are explained by
// the run (e.g. a kill between a provider call and its commit). It is asked
// only about counts above one.
type Excuse func(kind Kind, key string, count int) bool

// KindReport is the outcome of one kind.
type KindReport struct {
	Expected   int `json:"expected"`
	Observed   int `json:"observed"` // distinct keys observed
	Lost       int `json:"lost"`
	Duplicated int `json:"duplicated"` // keys observed more than once, not excused
	Excused    int `json:"excused"`    // keys observed more than once, excused
	Unexpected int `json:"unexpected"` // keys observed that nothing sent causes
}

// Report is the outcome of a run.
type Report struct {
	Sent        int                 `json:"sent"` // distinct event ids
	Published   int                 `json:"published"`
	Republished int                 `json:"republished"`
	Lost        int                 `json:"lost"`
	Duplicated  int                 `json:"duplicated_effects"`
	Excused     int                 `json:"excused_repeats"`
	Unexpected  int                 `json:"unexpected"`
	Kinds       map[Kind]KindReport `json:"kinds"`
	// Examples names a few keys of each failure, for the failure message.
	Examples []string `json:"examples,omitempty"`
}

// Pass reports whether nothing was lost or duplicated.
func (r Report) Pass() bool { return r.Lost == 0 && r.Duplicated == 0 }

// String is the one-line summary.
func (r Report) String() string {
	return fmt.Sprintf("sent %d (published %d, %d republished): lost %d, duplicated effects %d, unexpected %d, excused repeats %d",
		r.Sent, r.Published, r.Republished, r.Lost, r.Duplicated, r.Unexpected, r.Excused)
}

// Detail lists each kind's figures, one line per kind.
func (r Report) Detail() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(r.Kinds)) {
		kr := r.Kinds[k]
		fmt.Fprintf(&b, "  %-22s expected %6d observed %6d lost %d duplicated %d excused %d unexpected %d\n",
			k, kr.Expected, kr.Observed, kr.Lost, kr.Duplicated, kr.Excused, kr.Unexpected)
	}
	for _, e := range r.Examples {
		fmt.Fprintf(&b, "  e.g. %s\n", e)
	}
	return b.String()
}

const maxExamples = 5

// Check compares the ledger with what was observed. Every expected kind is
// checked; an observed kind nothing expects is all unexpected.
func (l *Ledger) Check(obs Observed, excuse Excuse) Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := Report{Sent: len(l.sent), Published: l.published, Republished: l.republished, Kinds: map[Kind]KindReport{}}
	kinds := map[Kind]bool{}
	for k := range l.expect {
		kinds[k] = true
	}
	for k := range obs {
		kinds[k] = true
	}
	examples := map[string]int{}
	example := func(what string, k Kind, key string) {
		tag := what + string(k)
		if examples[tag] < maxExamples {
			examples[tag]++
			r.Examples = append(r.Examples, fmt.Sprintf("%s %s %s", what, k, key))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		exp, seen := l.expect[k], obs[k]
		kr := KindReport{Expected: len(exp), Observed: len(seen)}
		for _, key := range slices.Sorted(maps.Keys(exp)) {
			n := seen[key]
			switch {
			case n == 0:
				kr.Lost++
				example("lost", k, key)
			case n > 1 && excuse != nil && excuse(k, key, n):
				kr.Excused++
			case n > 1:
				kr.Duplicated++
				example(fmt.Sprintf("duplicated (%dx)", n), k, key)
			}
		}
		for _, key := range slices.Sorted(maps.Keys(seen)) {
			if _, ok := exp[key]; !ok {
				kr.Unexpected++
				example("unexpected", k, key)
			}
		}
		r.Kinds[k] = kr
		r.Lost += kr.Lost
		r.Duplicated += kr.Duplicated
		r.Excused += kr.Excused
		r.Unexpected += kr.Unexpected
	}
	sort.Strings(r.Examples)
	return r
}

// CountRows runs a query whose rows are (key, count) and returns them as
// Counts, e.g. SELECT dedup_key, count(*) FROM notifications GROUP BY 1.
func CountRows(ctx context.Context, db *sql.DB, query string, args ...any) (Counts, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("ledger: %s: %w", query, err)
	}
	defer rows.Close()
	c := Counts{}
	for rows.Next() {
		var key string
		var n int
		if err := rows.Scan(&key, &n); err != nil {
			return nil, fmt.Errorf("ledger: scan %s: %w", query, err)
		}
		c[key] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: %s: %w", query, err)
	}
	return c, nil
}

// Tally counts keys.
func Tally(keys []string) Counts {
	c := Counts{}
	for _, k := range keys {
		c[k]++
	}
	return c
}
