package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseDigests(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for _, id := range []string{"d1", "d2", "d3", "d4"} {
		jobsDoctor(t, db, id, t0)
	}
	jobsExec(t, db, `UPDATE doctors SET active = ? WHERE id = 'd4'`, false)
	pref := func(doctor, digest string, weekly bool) {
		jobsExec(t, db, `INSERT INTO doctor_preferences (doctor_id, channels, digest, fallback_order, updated_at, weekly_summary) VALUES (?, '{}', ?, '[]', ?, ?)`,
			doctor, digest, t0, weekly)
	}
	pref("d2", "hourly", true)
	pref("d1", "daily@08:00", false)
	pref("d3", "off", true)
	pref("d4", "hourly", true) // inactive

	subs, err := q.DigestListSubscribers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 2 || subs[0].DoctorID != "d1" || subs[0].Digest != "daily@08:00" || !subs[0].UpdatedAt.Equal(t0) || subs[1].DoctorID != "d2" {
		t.Fatalf("subscribers: %+v, want d1 then d2 (d3 is off, d4 inactive)", subs)
	}

	// The items: d1's notifications in (after, until], but not the excluded
	// categories, not the digests themselves, not another doctor's.
	after, until := t0, t0.Add(time.Hour)
	for i, n := range []jobsNotification{
		{DoctorID: "d1", Category: "results", CreatedAt: after.Add(time.Minute)},
		{DoctorID: "d1", Category: "orders", CreatedAt: until},
		{DoctorID: "d1", Category: "results", CreatedAt: after},                  // at the start: in the previous period
		{DoctorID: "d1", Category: "results", CreatedAt: until.Add(time.Second)}, // after the end
		{DoctorID: "d1", Category: "critical_results", CreatedAt: after.Add(time.Minute)},
		{DoctorID: "d1", Category: "security", CreatedAt: after.Add(time.Minute)},
		{DoctorID: "d1", Category: "announcements", Type: "digest", CreatedAt: after.Add(time.Minute)},
		{DoctorID: "d2", Category: "results", CreatedAt: after.Add(time.Minute)},
	} {
		n.ID = "n" + string(rune('a'+i))
		jobsInsertNotification(t, db, n)
	}
	items, err := q.DigestCountItems(ctx, &store.DigestCountItemsParams{DoctorID: "d1", After: after, Until: until,
		ExcludeCategories: []string{"critical_results", "security"}, ExcludeType: "digest"})
	if err != nil || items != 2 {
		t.Fatalf("items: %d %v, want 2", items, err)
	}

	if _, ok, err := q.DigestGetLastPeriodEnd(ctx, "d1"); err != nil || ok {
		t.Fatalf("last digest of a doctor without one: %v %v", ok, err)
	}
	for _, end := range []time.Time{until, until.Add(-time.Hour)} {
		ok, err := q.DigestInsert(ctx, &store.DigestInsertParams{DoctorID: "d1", PeriodEnd: end, Items: items, At: until})
		if err != nil || !ok {
			t.Fatalf("insert digest: %v %v", ok, err)
		}
	}
	if ok, err := q.DigestInsert(ctx, &store.DigestInsertParams{DoctorID: "d1", PeriodEnd: until, Items: 9, At: until}); err != nil || ok {
		t.Fatalf("a period's second digest: %v %v, want not recorded", ok, err)
	}
	last, ok, err := q.DigestGetLastPeriodEnd(ctx, "d1")
	if err != nil || !ok || !last.Equal(until) || last.Location() != time.UTC {
		t.Fatalf("last digest: %v %v %v, want %v UTC", last, ok, err, until)
	}
	if err := q.DigestSetNotification(ctx, &store.DigestSetNotificationParams{DoctorID: "d1", PeriodEnd: until, NotificationID: "na"}); err != nil {
		t.Fatal(err)
	}
	var digest struct {
		Items          int    `bun:"items"`
		NotificationID string `bun:"notification_id"`
	}
	if err := db.NewRaw(`SELECT items, notification_id FROM digests WHERE doctor_id = 'd1' AND period_end = ?`, until).Scan(ctx, &digest); err != nil ||
		digest.Items != 2 || digest.NotificationID != "na" {
		t.Fatalf("digest row: %+v %v", digest, err)
	}

	exerciseWeeklySummaries(t, db, q, t0)
}

func exerciseWeeklySummaries(t *testing.T, db bun.IDB, q *store.Queries, t0 time.Time) {
	ctx := context.Background()
	week := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC) // a Monday
	// d1 opted out, d4 is inactive; d3 has no preferences row.
	due, err := q.WeeklySummaryListDue(ctx, week)
	if err != nil || len(due) != 2 || due[0] != "d2" || due[1] != "d3" {
		t.Fatalf("due: %v %v, want d2, d3", due, err)
	}
	ok, err := q.WeeklySummaryInsert(ctx, &store.WeeklySummaryInsertParams{DoctorID: "d2", WeekStart: week, At: t0})
	if err != nil || !ok {
		t.Fatalf("insert summary: %v %v", ok, err)
	}
	if ok, err := q.WeeklySummaryInsert(ctx, &store.WeeklySummaryInsertParams{DoctorID: "d2", WeekStart: week, At: t0}); err != nil || ok {
		t.Fatalf("second summary of the week: %v %v, want not recorded", ok, err)
	}
	if due, err := q.WeeklySummaryListDue(ctx, week); err != nil || len(due) != 1 || due[0] != "d3" {
		t.Fatalf("due after d2's: %v %v", due, err)
	}
	if err := q.WeeklySummarySetNotification(ctx, &store.WeeklySummarySetNotificationParams{DoctorID: "d2", WeekStart: week, NotificationID: "nx"}); err != nil {
		t.Fatal(err)
	}
	var nid string
	if err := db.NewRaw(`SELECT notification_id FROM weekly_summaries WHERE doctor_id = 'd2' AND week_start = ?`, week).Scan(ctx, &nid); err != nil || nid != "nx" {
		t.Fatalf("summary's notification: %q %v", nid, err)
	}

	// Results: d3's own, of the categories, in [from, to).
	from := week.AddDate(0, 0, -7)
	for i, n := range []jobsNotification{
		{DoctorID: "d3", Category: "results", CreatedAt: from},
		{DoctorID: "d3", Category: "critical_results", CreatedAt: week.Add(-time.Second)},
		{DoctorID: "d3", Category: "results", CreatedAt: week},                                           // this week
		{DoctorID: "d3", Category: "orders", CreatedAt: from.Add(time.Hour)},                             // another category
		{DoctorID: "d3", Category: "results", CreatedAt: from.Add(time.Hour), OnBehalfOf: jobsPtr("d2")}, // a covering copy
	} {
		n.ID = "w" + string(rune('a'+i))
		jobsInsertNotification(t, db, n)
	}
	results, err := q.WeeklySummaryCountResults(ctx, &store.WeeklySummaryCountResultsParams{
		DoctorID: "d3", Categories: []string{"results", "critical_results"}, From: from, To: week})
	if err != nil || results != 2 {
		t.Fatalf("results: %d %v, want 2", results, err)
	}

	for i, status := range []string{"ordered", "in_progress", "completed", "cancelled"} {
		id := "o" + string(rune('a'+i))
		jobsExec(t, db, `INSERT INTO orders (id, patient_ref, status, last_seq, last_event_at, created_at, updated_at) VALUES (?, 'p', ?, 1, ?, ?, ?)`,
			id, status, t0, t0, t0)
		jobsExec(t, db, `INSERT INTO order_doctors (order_id, doctor_external_id) VALUES (?, 'ext-d3')`, id)
	}
	jobsExec(t, db, `INSERT INTO order_doctors (order_id, doctor_external_id) VALUES ('oa', 'ext-d2')`)
	pending, err := q.WeeklySummaryCountPendingOrders(ctx, "ext-d3")
	if err != nil || pending != 2 {
		t.Fatalf("pending orders: %d %v, want 2", pending, err)
	}
}
