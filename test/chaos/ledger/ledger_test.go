package ledger_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/rfd-notify/rfd/internal/testkit/pgtest"
	"github.com/rfd-notify/rfd/test/chaos/ledger"
)

func TestCheckCountsLostDuplicatedUnexpectedAndExcused(t *testing.T) {
	l := ledger.New()
	l.Sent("ev-1", ledger.Effect{Kind: "checkup", Key: "c1"}, ledger.Effect{Kind: "sms", Key: "d1"})
	l.Sent("ev-2", ledger.Effect{Kind: "checkup", Key: "c2"}, ledger.Effect{Kind: "sms", Key: "d2"})
	l.Sent("ev-3", ledger.Effect{Kind: "checkup", Key: "c3"}, ledger.Effect{Kind: "sms", Key: "d3"})
	l.Sent("ev-1", ledger.Effect{Kind: "checkup", Key: "c1"}) // a republish

	obs := ledger.Observed{
		"checkup": {"c1": 1, "c2": 2, "c9": 1}, // c2 twice, c3 lost, c9 unexpected
		"sms":     {"d1": 1, "d2": 2, "d3": 3}, // d2 excused, d3 not
		"poison":  {"m1": 1},                   // nothing expects poison
	}
	excuse := func(k ledger.Kind, key string, n int) bool { return k == "sms" && key == "d2" }
	r := l.Check(obs, excuse)

	if r.Sent != 3 || r.Published != 4 || r.Republished != 1 {
		t.Errorf("sent %d published %d republished %d, want 3 4 1", r.Sent, r.Published, r.Republished)
	}
	if r.Lost != 1 || r.Duplicated != 2 || r.Unexpected != 2 || r.Excused != 1 {
		t.Errorf("report %s, want lost 1, duplicated 2, unexpected 2, excused 1\n%s", r, r.Detail())
	}
	if r.Pass() {
		t.Error("a run with lost and duplicated effects passes")
	}
	if got := r.Kinds["checkup"]; got.Lost != 1 || got.Duplicated != 1 || got.Unexpected != 1 || got.Expected != 3 {
		t.Errorf("checkup %+v", got)
	}
	if !strings.Contains(r.Detail(), "lost checkup c3") {
		t.Errorf("detail names no lost example:\n%s", r.Detail())
	}

	clean := l.Check(ledger.Observed{"checkup": {"c1": 1, "c2": 1, "c3": 1}, "sms": {"d1": 1, "d2": 1, "d3": 1}}, nil)
	if !clean.Pass() || clean.Unexpected != 0 {
		t.Errorf("exact observation: %s", clean)
	}
}

func TestCountRowsOnPostgreSQL(t *testing.T) {
	db, err := sql.Open("pgx", pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (k TEXT); INSERT INTO t VALUES ('a'), ('b'), ('b')`); err != nil {
		t.Fatal(err)
	}
	c, err := ledger.CountRows(ctx, db, `SELECT k, count(*) FROM t GROUP BY k`)
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 2 || c["a"] != 1 || c["b"] != 2 {
		t.Errorf("counts %v", c)
	}
}
