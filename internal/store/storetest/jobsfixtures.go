package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/uptrace/bun"
)

// The jobs' aggregates read doctors, notifications and deliveries; these
// fixtures write the few columns those reads look at.

// jobsDoctor inserts an active doctor, external id "ext-"+id.
func jobsDoctor(t *testing.T, db bun.IDB, id string, at time.Time) {
	t.Helper()
	jobsExec(t, db, `INSERT INTO doctors (id, external_user_id, name, profile_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		id, "ext-"+id, "Dr "+id, at, at, at)
}

// jobsNotification is the columns of a notifications row the jobs read.
type jobsNotification struct {
	ID, DoctorID, Category, Type, Priority, SourceEventID, DedupKey string
	OnBehalfOf                                                      *string
	CreatedAt                                                       time.Time
	AcknowledgedAt                                                  *time.Time
	CheckupID                                                       *string
	ResultVersion                                                   *int
}

func jobsInsertNotification(t *testing.T, db bun.IDB, n jobsNotification) {
	t.Helper()
	if n.Type == "" {
		n.Type = "result_ready"
	}
	if n.Priority == "" {
		n.Priority = "normal"
	}
	if n.SourceEventID == "" {
		n.SourceEventID = "evt-" + n.ID
	}
	if n.DedupKey == "" {
		n.DedupKey = "key-" + n.ID
	}
	var seq int64
	if err := db.NewRaw(`SELECT COUNT(*) + 1 FROM notifications WHERE doctor_id = ?`, n.DoctorID).Scan(context.Background(), &seq); err != nil {
		t.Fatal(err)
	}
	jobsExec(t, db, `INSERT INTO notifications (id, doctor_id, seq, dedup_key, type, category, priority, title, body, data,
	checkup_id, result_version, source_event_id, on_behalf_of, send_at, created_at, acknowledged_at)
VALUES (?, ?, ?, ?, ?, ?, ?, 't', 'b', '{}', ?, ?, ?, ?, ?, ?, ?)`,
		n.ID, n.DoctorID, seq, n.DedupKey, n.Type, n.Category, n.Priority, n.CheckupID, n.ResultVersion, n.SourceEventID,
		n.OnBehalfOf, n.CreatedAt, n.CreatedAt, n.AcknowledgedAt)
}

// jobsDelivery inserts a delivery of a notification on a channel.
func jobsDelivery(t *testing.T, db bun.IDB, notificationID, channel, status string, updatedAt time.Time) {
	t.Helper()
	jobsExec(t, db, `INSERT INTO deliveries (id, notification_id, channel, status, send_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		notificationID+"/"+channel, notificationID, channel, status, updatedAt, updatedAt, updatedAt)
}

func jobsExec(t *testing.T, db bun.IDB, query string, args ...any) {
	t.Helper()
	if _, err := db.NewRaw(query, args...).Exec(context.Background()); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func jobsPtr[T any](v T) *T { return &v }
