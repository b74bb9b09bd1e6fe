package main

import (
	"context"
	"slices"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Statement is one statement's share of a measurement, from
// pg_stat_statements: calls, rows and execution plus planning time, per
// event.
type Statement struct {
	Query          string  `json:"query"`
	CallsPerEvent  float64 `json:"calls_per_event"`
	RowsPerEvent   float64 `json:"rows_per_event"`
	MicrosPerEvent float64 `json:"us_per_event"`
}

type statementRow struct {
	QueryID int64   `bun:"queryid"`
	Calls   int64   `bun:"calls"`
	Rows    int64   `bun:"rows"`
	Millis  float64 `bun:"ms"`
	Query   string  `bun:"query"`
}

// statementSnapshot is pg_stat_statements for db's database, by query id;
// nil (with the reason) when the server does not load the extension, which
// needs shared_preload_libraries and a restart, so the harness only reads
// it where an operator turned it on.
func statementSnapshot(ctx context.Context, db *bun.DB) (map[int64]statementRow, string) {
	if db == nil || db.Dialect().Name() != dialect.PG {
		return nil, "not PostgreSQL"
	}
	if _, err := db.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return nil, "extension not available: " + err.Error()
	}
	var rows []statementRow
	err := db.NewRaw(`SELECT queryid, calls, rows, total_exec_time + total_plan_time AS ms, query FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND queryid IS NOT NULL`).Scan(ctx, &rows)
	if err != nil {
		return nil, "not loaded (add pg_stat_statements to shared_preload_libraries): " + err.Error()
	}
	out := make(map[int64]statementRow, len(rows))
	for _, r := range rows {
		out[r.QueryID] = r
	}
	return out, ""
}

// statementsBetween is the top statements by time between two snapshots,
// per event; the harness's own polls are left out.
func statementsBetween(before, after map[int64]statementRow, events, top int) []Statement {
	var out []Statement
	for id, a := range after {
		b := before[id]
		calls := a.Calls - b.Calls
		if calls <= 0 || isHarnessQuery(a.Query) {
			continue
		}
		out = append(out, Statement{
			Query:          oneLine(a.Query, 140),
			CallsPerEvent:  float64(calls) / float64(events),
			RowsPerEvent:   float64(a.Rows-b.Rows) / float64(events),
			MicrosPerEvent: (a.Millis - b.Millis) * 1000 / float64(events),
		})
	}
	slices.SortFunc(out, func(x, y Statement) int {
		switch {
		case x.MicrosPerEvent > y.MicrosPerEvent:
			return -1
		case x.MicrosPerEvent < y.MicrosPerEvent:
			return 1
		}
		return strings.Compare(x.Query, y.Query)
	})
	return out[:min(top, len(out))]
}

// isHarnessQuery: the harness's waits read the inbox and notifications
// with counts and min/max; the service never does.
func isHarnessQuery(q string) bool {
	return strings.Contains(q, "pg_stat_statements") || strings.HasPrefix(strings.TrimSpace(q), "SELECT count(") ||
		strings.Contains(q, "min(processed_at)")
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

func logStatements(label string, stmts []Statement) {
	if len(stmts) == 0 {
		return
	}
	logf("%s: top statements by PostgreSQL time per event (pg_stat_statements):", label)
	for _, s := range stmts {
		logf("  %7.1f µs  %5.2f calls  %6.2f rows  %s", s.MicrosPerEvent, s.CallsPerEvent, s.RowsPerEvent, s.Query)
	}
}

// statementsReport prints why there are no statement figures.
func statementsReport(label, why string) {
	if why != "" && why != "not PostgreSQL" {
		logf("%s: per-statement figures skipped: pg_stat_statements %s", label, why)
	}
}
