package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseReports(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"d1", "d2"} {
		jobsDoctor(t, db, id, day)
	}
	event := day.Add(8 * time.Hour)
	jobsExec(t, db, `INSERT INTO checkups (id, patient_ref, status, last_event_at, created_at, updated_at) VALUES ('c1', 'p', 'completed', ?, ?, ?)`, event, event, event)
	jobsExec(t, db, `INSERT INTO result_versions (checkup_id, version, status, critical, result, event_id, occurred_at, received_at) VALUES ('c1', 2, 'final', ?, '{}', 'e', ?, ?)`,
		true, event, event)
	notified := event.Add(time.Minute)
	for _, n := range []jobsNotification{
		{ID: "n2", Priority: "critical", CreatedAt: notified.Add(time.Hour)},
		{ID: "n1", Priority: "critical", CreatedAt: notified, CheckupID: jobsPtr("c1"), ResultVersion: jobsPtr(2), AcknowledgedAt: jobsPtr(notified.Add(10 * time.Minute))},
		{ID: "normal", Priority: "normal", CreatedAt: notified},
		{ID: "copy", Priority: "critical", CreatedAt: notified, OnBehalfOf: jobsPtr("d2")},
		{ID: "next-day", Priority: "critical", CreatedAt: day.Add(24 * time.Hour)},
	} {
		n.DoctorID, n.Category = "d1", "critical_results"
		jobsInsertNotification(t, db, n)
	}
	jobsDelivery(t, db, "n1", "push", "failed", notified.Add(time.Second))
	jobsDelivery(t, db, "n1", "sms", "delivered", notified.Add(3*time.Minute))
	jobsDelivery(t, db, "n1", "email", "sent", notified.Add(2*time.Minute))
	jobsDelivery(t, db, "n2", "push", "queued", notified.Add(time.Hour))
	for _, level := range []int{1, 2} {
		if err := q.EscalationStepInsert(ctx, &store.EscalationStep{NotificationID: "n2", Level: level, Kind: "channel", At: notified.Add(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}

	rows, err := q.ReportListTimeliness(ctx, &store.ReportListTimelinessParams{Priority: "critical", From: day, To: day.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].ID != "n1" || rows[1].ID != "n2" {
		t.Fatalf("rows: %+v, want n1 then n2", rows)
	}
	first := rows[0]
	if first.DoctorID != "d1" || !first.CreatedAt.Equal(notified) || first.AcknowledgedAt == nil || !first.AcknowledgedAt.Equal(notified.Add(10*time.Minute)) ||
		first.EventAt == nil || !first.EventAt.Equal(event) || first.DeliveredAt == nil || !first.DeliveredAt.Equal(notified.Add(2*time.Minute)) || first.Level != nil {
		t.Fatalf("n1: %+v", first)
	}
	if second := rows[1]; second.EventAt != nil || second.DeliveredAt != nil || second.AcknowledgedAt != nil || second.Level == nil || *second.Level != 2 {
		t.Fatalf("n2: %+v", second)
	}

	// Report mails.
	if exists, err := q.ReportMailExists(ctx, "m1"); err != nil || exists {
		t.Fatalf("exists before: %v %v", exists, err)
	}
	if _, err := q.ReportMailGet(ctx, "m1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown: %v, want ErrNotFound", err)
	}
	mail := &store.ReportMail{ID: "m1", Report: "critical-timeliness", PeriodStart: day, PeriodEnd: day.AddDate(0, 0, 6),
		Recipient: "ops@example.org", Body: `{"days":[]}`, CreatedAt: day.AddDate(0, 0, 7)}
	if ok, err := q.ReportMailInsert(ctx, mail); err != nil || !ok {
		t.Fatalf("insert: %v %v", ok, err)
	}
	if ok, err := q.ReportMailInsert(ctx, mail); err != nil || ok {
		t.Fatalf("second insert: %v %v, want not stored", ok, err)
	}
	if exists, err := q.ReportMailExists(ctx, "m1"); err != nil || !exists {
		t.Fatalf("exists after: %v %v", exists, err)
	}
	got, err := q.ReportMailGet(ctx, "m1")
	if err != nil || got.ID != "m1" || got.Recipient != mail.Recipient || got.Body != mail.Body || got.Status != "pending" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if err := q.ReportMailRecordFailure(ctx, &store.ReportMailRecordFailureParams{ID: "m1", Error: "421 try later"}); err != nil {
		t.Fatal(err)
	}
	var state struct {
		Status    string     `bun:"status"`
		Attempts  int        `bun:"attempts"`
		LastError string     `bun:"last_error"`
		MessageID string     `bun:"message_id"`
		SentAt    *time.Time `bun:"sent_at"`
	}
	read := func() {
		t.Helper()
		if err := db.NewRaw(`SELECT status, attempts, last_error, message_id, sent_at FROM report_mails WHERE id = 'm1'`).Scan(ctx, &state); err != nil {
			t.Fatal(err)
		}
	}
	read()
	if state.Status != "pending" || state.Attempts != 1 || state.LastError != "421 try later" || state.SentAt != nil {
		t.Fatalf("after a failure: %+v", state)
	}
	sent := day.AddDate(0, 0, 7).Add(time.Hour)
	if err := q.ReportMailMarkSent(ctx, &store.ReportMailMarkSentParams{ID: "m1", MessageID: "smtp-1", At: sent}); err != nil {
		t.Fatal(err)
	}
	read()
	if state.Status != "sent" || state.Attempts != 2 || state.LastError != "" || state.MessageID != "smtp-1" || state.SentAt == nil || !state.SentAt.Equal(sent) {
		t.Fatalf("after sending: %+v", state)
	}
}
