package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/uptrace/bun"
)

// exec runs a fixture statement: the rows a test needs from aggregates
// other than its own.
func exec(t *testing.T, db bun.IDB, query string, args ...any) {
	t.Helper()
	if _, err := db.NewRaw(query, args...).Exec(context.Background()); err != nil {
		t.Fatalf("fixture %s: %v", query, err)
	}
}

// seedDoctor stores doctor id (external user id ext) of clinic.
func seedDoctor(t *testing.T, db bun.IDB, id, ext, clinic string, at time.Time) {
	t.Helper()
	exec(t, db, `INSERT INTO doctors (id, external_user_id, name, clinic, profile_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		id, ext, "Dr "+id, clinic, at, at, at)
}

// seedNotification stores a bare notification id of doctorID, with the
// doctor's next sequence number.
func seedNotification(t *testing.T, db bun.IDB, id, doctorID, source string, at time.Time) {
	t.Helper()
	exec(t, db, `UPDATE doctors SET notification_seq = notification_seq + 1 WHERE id = ?`, doctorID)
	exec(t, db, `INSERT INTO notifications (id, doctor_id, seq, dedup_key, type, category, priority, title, body, data, source_event_id, send_at, created_at)
VALUES (?, ?, (SELECT notification_seq FROM doctors WHERE id = ?), ?, 'result_available', 'results', 'normal', 'title', 'body', '{}', ?, ?, ?)`,
		id, doctorID, doctorID, "key-"+id, source, at, at)
}

// scalar reads one value.
func scalar[T any](t *testing.T, db bun.IDB, query string, args ...any) T {
	t.Helper()
	var v T
	if err := db.NewRaw(query, args...).Scan(context.Background(), &v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}
