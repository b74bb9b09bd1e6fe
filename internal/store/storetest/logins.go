package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseLoginAudit(t *testing.T, open Opener) {
	ctx := context.Background()
	q := store.NewQueries(open(t))
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	login := func(event, ext string, success bool, occurred time.Time, ip string) *store.LoginAuditInsertParams {
		return &store.LoginAuditInsertParams{EventID: event, DoctorExternalID: ext, Success: success, OccurredAt: occurred,
			SourceIP: ip, UserAgent: "Mozilla/5.0", Method: "password", RecordedAt: at}
	}
	for _, l := range []*store.LoginAuditInsertParams{
		login("e1", "a", true, at.Add(-2*time.Hour), "192.0.2.1"),
		login("e2", "a", true, at.Add(-time.Hour), "192.0.2.2"),
		login("e3", "a", true, at, "192.0.2.2"), // the login being checked
		login("e4", "a", true, at.Add(-48*time.Hour), "192.0.2.9"),
		login("e5", "b", true, at.Add(-time.Hour), "192.0.2.9"),
		login("f1", "a", false, at.Add(-10*time.Minute), "192.0.2.7"),
		login("f2", "a", false, at.Add(-5*time.Minute), "192.0.2.7"),
		login("f3", "a", false, at.Add(-30*time.Minute), "192.0.2.7"),
		login("f4", "b", false, at.Add(-time.Minute), "192.0.2.7"),
	} {
		if recorded, err := q.LoginAuditInsert(ctx, l); err != nil || !recorded {
			t.Fatalf("insert %s: %v %v", l.EventID, recorded, err)
		}
	}
	if recorded, err := q.LoginAuditInsert(ctx, login("e1", "a", false, at, "192.0.2.3")); err != nil || recorded {
		t.Fatalf("insert a recorded event: %v %v, want false", recorded, err)
	}

	// Within the last day, e3 aside: e1 and e2 (e4 is older, e5 another doctor's).
	for _, c := range []struct {
		ip   string
		want store.LoginSuccesses
	}{{"192.0.2.2", store.LoginSuccesses{All: 2, SameIP: 1}}, {"192.0.2.9", store.LoginSuccesses{All: 2, SameIP: 0}}} {
		got, err := q.LoginAuditCountSuccesses(ctx, &store.LoginAuditCountSuccessesParams{
			DoctorExternalID: "a", SourceIP: c.ip, ExceptEventID: "e3", From: at.Add(-24 * time.Hour), To: at})
		if err != nil || got != c.want {
			t.Fatalf("successes from %s: %+v %v, want %+v", c.ip, got, err, c.want)
		}
	}
	if got, err := q.LoginAuditCountSuccesses(ctx, &store.LoginAuditCountSuccessesParams{
		DoctorExternalID: "c", SourceIP: "192.0.2.1", ExceptEventID: "x", From: at.Add(-24 * time.Hour), To: at}); err != nil || got != (store.LoginSuccesses{}) {
		t.Fatalf("successes of a doctor without logins: %+v %v", got, err)
	}

	// Failures in (at-15m, at]: f1 and f2; f3 is older, f4 another doctor's.
	if n, err := q.LoginAuditCountFailures(ctx, &store.LoginAuditCountFailuresParams{DoctorExternalID: "a", After: at.Add(-15 * time.Minute), Until: at}); err != nil || n != 2 {
		t.Fatalf("failures: %d %v, want 2", n, err)
	}
	if n, err := q.LoginAuditCountFailures(ctx, &store.LoginAuditCountFailuresParams{DoctorExternalID: "a", After: at.Add(-10 * time.Minute), Until: at}); err != nil || n != 1 {
		t.Fatalf("failures after f1: %d %v, want 1 (the window's start is excluded)", n, err)
	}
}
