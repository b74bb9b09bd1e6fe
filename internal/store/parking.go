package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"time"
)

// ParkingExecutor holds the statements on pending_notifications: the
// intents parked until user management registers their doctor. Parking
// and dropping intents inside a notifier's transaction are the Batch's
// Parking methods below.
type ParkingExecutor interface {
	ParkingLock(ctx context.Context, externalIDs []string) error
	ParkingListForDoctor(ctx context.Context, externalID string) ([]ParkedIntent, error)
	ParkingListReleasable(ctx context.Context) ([]string, error)
	ParkingCount(ctx context.Context, overdueBefore time.Time) (ParkingCounts, error)
	ParkingListOverdue(ctx context.Context, before time.Time) ([]ParkingOverdue, error)
	ParkingMarkReported(ctx context.Context, params *ParkingMarkReportedParams) error
}

// ParkedIntent is a parked intent: its dedup key and its JSON.
type ParkedIntent struct {
	DedupKey string `bun:"dedup_key"`
	Intent   string `bun:"intent"`
}

// ParkingInsertParams parks Intent (JSON) for the doctor ExternalID.
type ParkingInsertParams struct {
	DedupKey      string
	ExternalID    string
	Intent        string
	SourceEventID string
	ReceivedAt    time.Time
}

// ParkingCounts counts the parked intents, and those parked before the
// overdue cutoff.
type ParkingCounts struct {
	Waiting int
	Overdue int
}

// ParkingOverdue is how many intents not yet reported wait for a doctor.
type ParkingOverdue struct {
	ExternalID string `bun:"doctor_external_id"`
	N          int    `bun:"n"`
}

// ParkingMarkReportedParams marks the intents parked before Before, not
// reported yet, reported at At.
type ParkingMarkReportedParams struct {
	Before time.Time
	At     time.Time
}

// parkingLockClass is the first key of the advisory locks ParkingLock
// takes ("RFDp"), keeping them apart from any other advisory lock taken on
// the same database (watermill-sql's take the one-key form).
const parkingLockClass = 0x52464470

// ParkingLock takes, on PostgreSQL, the transaction-scoped parking lock of
// each doctor named by external user id: the lock that orders parking an
// intent for an unknown doctor against releasing that doctor's intents.
// The locks are taken in one statement, in key order, so two transactions
// locking several doctors cannot deadlock on them; the key is a 32-bit
// hash of the id, and two ids sharing one only wait for each other a
// little more. On SQLite, where transactions run one at a time, it does
// nothing. It must run in a transaction.
func (q *Queries) ParkingLock(ctx context.Context, externalIDs []string) error {
	if !q.pg || len(externalIDs) == 0 {
		return nil
	}
	keys := make([]int32, len(externalIDs))
	for i, ext := range externalIDs {
		h := fnv.New32a()
		_, _ = h.Write([]byte(ext))
		keys[i] = int32(h.Sum32())
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	args := make([]any, 0, len(keys)+1)
	args = append(args, parkingLockClass)
	for _, k := range keys {
		args = append(args, k)
	}
	// A VALUES list is scanned in its order: the locks are taken in it.
	query := "SELECT pg_advisory_xact_lock(CAST(? AS INTEGER), v.k) FROM (VALUES " +
		Repeat("(CAST(? AS INTEGER))", len(keys)) + ") AS v(k)"
	if _, err := q.db.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("lock doctors' pending intents: %w", err)
	}
	return nil
}

// ParkingListForDoctor lists the intents parked for the doctor, oldest first.
func (q *Queries) ParkingListForDoctor(ctx context.Context, externalID string) ([]ParkedIntent, error) {
	var rows []ParkedIntent
	if err := q.db.NewRaw("SELECT dedup_key, CAST(intent AS TEXT) AS intent FROM pending_notifications WHERE doctor_external_id = ? ORDER BY received_at, dedup_key", externalID).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read pending intents: %w", err)
	}
	return rows, nil
}

// ParkingListReleasable lists the doctors (external user ids) with parked
// intents who are registered by now.
func (q *Queries) ParkingListReleasable(ctx context.Context) ([]string, error) {
	var ready []string
	if err := q.db.NewRaw(`SELECT DISTINCT p.doctor_external_id FROM pending_notifications p
JOIN doctors d ON d.external_user_id = p.doctor_external_id ORDER BY 1`).Scan(ctx, &ready); err != nil {
		return nil, fmt.Errorf("find releasable: %w", err)
	}
	return ready, nil
}

// ParkingCount counts the parked intents, and those received before
// overdueBefore, reported or not.
func (q *Queries) ParkingCount(ctx context.Context, overdueBefore time.Time) (ParkingCounts, error) {
	var c ParkingCounts
	if err := q.db.NewRaw(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN received_at < ? THEN 1 ELSE 0 END), 0) FROM pending_notifications`, overdueBefore).
		Scan(ctx, &c.Waiting, &c.Overdue); err != nil {
		return ParkingCounts{}, fmt.Errorf("count pending notifications: %w", err)
	}
	return c, nil
}

// ParkingListOverdue counts, by doctor, the intents received before before
// and not reported yet.
func (q *Queries) ParkingListOverdue(ctx context.Context, before time.Time) ([]ParkingOverdue, error) {
	var overdue []ParkingOverdue
	if err := q.db.NewRaw(`SELECT doctor_external_id, COUNT(*) AS n FROM pending_notifications
WHERE reported_at IS NULL AND received_at < ? GROUP BY doctor_external_id ORDER BY doctor_external_id`, before).Scan(ctx, &overdue); err != nil {
		return nil, fmt.Errorf("find overdue: %w", err)
	}
	return overdue, nil
}

func (q *Queries) ParkingMarkReported(ctx context.Context, params *ParkingMarkReportedParams) error {
	if _, err := q.db.NewRaw(`UPDATE pending_notifications SET reported_at = ? WHERE reported_at IS NULL AND received_at < ?`,
		params.At, params.Before).Exec(ctx); err != nil {
		return fmt.Errorf("mark reported: %w", err)
	}
	return nil
}

// ParkingInsert parks an intent, unless one with its dedup key is parked.
func (b *Batch) ParkingInsert(ctx context.Context, params *ParkingInsertParams) error {
	if err := b.Exec(ctx, `INSERT INTO pending_notifications (dedup_key, doctor_external_id, intent, source_event_id, received_at)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING`,
		params.DedupKey, params.ExternalID, params.Intent, params.SourceEventID, params.ReceivedAt); err != nil {
		return fmt.Errorf("keep pending intent: %w", err)
	}
	return nil
}

// ParkingDelete drops the parked intent with dedupKey.
func (b *Batch) ParkingDelete(ctx context.Context, dedupKey string) error {
	if err := b.Exec(ctx, "DELETE FROM pending_notifications WHERE dedup_key = ?", dedupKey); err != nil {
		return fmt.Errorf("delete pending intent: %w", err)
	}
	return nil
}

// ParkingDeleteForCheckup drops the intents parked for checkupID's
// notifications.
func (b *Batch) ParkingDeleteForCheckup(ctx context.Context, checkupID string) error {
	if err := b.Exec(ctx, `DELETE FROM pending_notifications WHERE dedup_key LIKE ?`, "checkup/"+checkupID+"/%"); err != nil {
		return fmt.Errorf("drop pending intents of retracted checkup: %w", err)
	}
	return nil
}
