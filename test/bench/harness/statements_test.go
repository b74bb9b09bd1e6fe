package main

import "testing"

// The figures are the difference between the snapshots, per event, top
// first; statements the measurement did not run and the harness's own
// polls are left out.
func TestStatementsBetween(t *testing.T) {
	before := map[int64]statementRow{
		1: {QueryID: 1, Calls: 10, Rows: 10, Millis: 5, Query: "INSERT INTO inbox VALUES ($1)"},
		2: {QueryID: 2, Calls: 3, Rows: 3, Millis: 1, Query: "SELECT 1"},
	}
	after := map[int64]statementRow{
		1: {QueryID: 1, Calls: 110, Rows: 310, Millis: 25, Query: "INSERT INTO inbox VALUES ($1)"},
		2: {QueryID: 2, Calls: 3, Rows: 3, Millis: 1, Query: "SELECT 1"},
		3: {QueryID: 3, Calls: 50, Rows: 50, Millis: 40, Query: "UPDATE   doctors\n SET seq = seq + 1"},
		4: {QueryID: 4, Calls: 500, Rows: 500, Millis: 900, Query: "SELECT count(*) AS n FROM inbox"},
	}
	got := statementsBetween(before, after, 100, 5)
	if len(got) != 2 {
		t.Fatalf("got %+v, want the update and the insert", got)
	}
	if got[0].Query != "UPDATE doctors SET seq = seq + 1" || got[0].MicrosPerEvent != 400 || got[0].CallsPerEvent != 0.5 {
		t.Errorf("first: %+v", got[0])
	}
	if got[1].MicrosPerEvent != 200 || got[1].CallsPerEvent != 1 || got[1].RowsPerEvent != 3 {
		t.Errorf("second: %+v", got[1])
	}
	if top := statementsBetween(before, after, 100, 1); len(top) != 1 || top[0].MicrosPerEvent != 400 {
		t.Errorf("top 1: %+v", top)
	}
}
