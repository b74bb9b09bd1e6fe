package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CheckupExecutor holds the reads of checkups and their result versions;
// the writes of the checkup-events consumer go to its transaction's Batch
// (the Batch's Checkup methods below).
type CheckupExecutor interface {
	CheckupListResultVersions(ctx context.Context, checkupIDs []string) (map[string][]int, error)
	CheckupGetLatestResult(ctx context.Context, checkupID string) (*CheckupResultVersion, error)
	CheckupGetVisible(ctx context.Context, params *CheckupGetVisibleParams) (*Checkup, error)
	CheckupListResults(ctx context.Context, checkupID string) ([]CheckupResult, error)
}

// CheckupResultVersion is a stored result version's number and status.
type CheckupResultVersion struct {
	Version int    `bun:"version"`
	Status  string `bun:"status"`
}

// CheckupUpsertParams records a checkup event: the checkup's status follows
// the newest event by occurrence time (LastEventAt).
type CheckupUpsertParams struct {
	ID          string
	OrderID     string
	PatientRef  string
	Status      string
	ScheduledAt *time.Time
	CompletedAt *time.Time
	LastEventAt time.Time
	Now         time.Time
}

// CheckupAddDoctorParams names a referring doctor of a checkup.
type CheckupAddDoctorParams struct {
	CheckupID  string
	ExternalID string
}

// CheckupResultVersionInsertParams stores result version Version of a
// checkup; Result is its JSON.
type CheckupResultVersionInsertParams struct {
	CheckupID  string
	Version    int
	Status     string
	Critical   bool
	Result     string
	EventID    string
	OccurredAt time.Time
	ReceivedAt time.Time
}

// CheckupListResultVersions reads the result versions stored for
// checkupIDs, by checkup, in one statement (constant per number of
// checkups, prepared on PostgreSQL: see Rows).
func (q *Queries) CheckupListResultVersions(ctx context.Context, checkupIDs []string) (map[string][]int, error) {
	args := make([]any, len(checkupIDs))
	for i, c := range checkupIDs {
		args[i] = c
	}
	query := "SELECT checkup_id, version FROM result_versions WHERE checkup_id IN (" + Repeat("?", len(checkupIDs)) + ")"
	versions := make(map[string][]int, len(checkupIDs))
	err := Rows(ctx, q.db, query, args, func(scan Scan) error {
		var (
			checkup string
			v       int
		)
		if err := scan(&checkup, &v); err != nil {
			return err
		}
		versions[checkup] = append(versions[checkup], v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("result versions: %w", err)
	}
	return versions, nil
}

// CheckupGetLatestResult is the checkup's latest result version, or
// ErrNotFound when it has none.
func (q *Queries) CheckupGetLatestResult(ctx context.Context, checkupID string) (*CheckupResultVersion, error) {
	var latest CheckupResultVersion
	err := q.db.NewRaw("SELECT version, status FROM result_versions WHERE checkup_id = ? ORDER BY version DESC LIMIT 1", checkupID).Scan(ctx, &latest)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("latest result version: %w", err)
	}
	return &latest, nil
}

// CheckupUpsert creates or updates the checkup: a late "scheduled" never
// takes back a "completed".
func (b *Batch) CheckupUpsert(ctx context.Context, params *CheckupUpsertParams) error {
	err := b.Exec(ctx, `INSERT INTO checkups (id, order_id, patient_ref, status, scheduled_at, completed_at, last_event_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
	status = CASE WHEN excluded.last_event_at >= checkups.last_event_at THEN excluded.status ELSE checkups.status END,
	scheduled_at = COALESCE(excluded.scheduled_at, checkups.scheduled_at),
	completed_at = COALESCE(checkups.completed_at, excluded.completed_at),
	last_event_at = CASE WHEN excluded.last_event_at >= checkups.last_event_at THEN excluded.last_event_at ELSE checkups.last_event_at END,
	updated_at = excluded.updated_at`,
		params.ID, params.OrderID, params.PatientRef, params.Status, params.ScheduledAt, params.CompletedAt, params.LastEventAt, params.Now, params.Now)
	if err != nil {
		return fmt.Errorf("upsert checkup: %w", err)
	}
	return nil
}

func (b *Batch) CheckupAddDoctor(ctx context.Context, params *CheckupAddDoctorParams) error {
	if err := b.Exec(ctx, `INSERT INTO checkup_doctors (checkup_id, doctor_external_id) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		params.CheckupID, params.ExternalID); err != nil {
		return fmt.Errorf("record referring doctor: %w", err)
	}
	return nil
}

// CheckupResultVersionInsert is a plain insert: should another transaction
// store the same version meanwhile, this one fails on the key.
func (b *Batch) CheckupResultVersionInsert(ctx context.Context, params *CheckupResultVersionInsertParams) error {
	err := b.Exec(ctx, `INSERT INTO result_versions (checkup_id, version, status, critical, result, event_id, occurred_at, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		params.CheckupID, params.Version, params.Status, params.Critical, params.Result, params.EventID, params.OccurredAt, params.ReceivedAt)
	if err != nil {
		return fmt.Errorf("store result version: %w", err)
	}
	return nil
}

// visibleCheckupIDs selects the checkups a doctor may see (args: the
// doctor's external user id, then their id): those naming them as a
// referring doctor, and those they were notified about.
const visibleCheckupIDs = `SELECT checkup_id FROM checkup_doctors WHERE doctor_external_id = ?
UNION SELECT checkup_id FROM notifications WHERE doctor_id = ? AND checkup_id IS NOT NULL`

// Checkup is a row of checkups.
type Checkup struct {
	ID          string     `bun:"id"`
	OrderID     string     `bun:"order_id"`
	PatientRef  string     `bun:"patient_ref"`
	Status      string     `bun:"status"`
	ScheduledAt *time.Time `bun:"scheduled_at"`
	CompletedAt *time.Time `bun:"completed_at"`
	LastEventAt time.Time  `bun:"last_event_at"`
	CreatedAt   time.Time  `bun:"created_at"`
	UpdatedAt   time.Time  `bun:"updated_at"`
}

// CheckupResult is a stored result version; Result is its JSON.
type CheckupResult struct {
	Version    int       `bun:"version"`
	Status     string    `bun:"status"`
	Critical   bool      `bun:"critical"`
	Result     string    `bun:"result"`
	OccurredAt time.Time `bun:"occurred_at"`
	ReceivedAt time.Time `bun:"received_at"`
}

// CheckupGetVisibleParams names checkup ID as seen by a doctor (their
// external user id and id).
type CheckupGetVisibleParams struct {
	ID               string
	DoctorExternalID string
	DoctorID         string
}

// CheckupGetVisible is the checkup if the doctor may see it, else
// ErrNotFound.
func (q *Queries) CheckupGetVisible(ctx context.Context, params *CheckupGetVisibleParams) (*Checkup, error) {
	var row Checkup
	err := q.db.NewRaw(`SELECT id, order_id, patient_ref, status, scheduled_at, completed_at, last_event_at, created_at, updated_at
FROM checkups WHERE id = ? AND id IN (`+visibleCheckupIDs+`)`, params.ID, params.DoctorExternalID, params.DoctorID).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load checkup: %w", err)
	}
	return &row, nil
}

// CheckupListResults lists the checkup's result versions, oldest first.
func (q *Queries) CheckupListResults(ctx context.Context, checkupID string) ([]CheckupResult, error) {
	var versions []CheckupResult
	if err := q.db.NewRaw(`SELECT version, status, critical, CAST(result AS TEXT) AS result, occurred_at, received_at
FROM result_versions WHERE checkup_id = ? ORDER BY version`, checkupID).Scan(ctx, &versions); err != nil {
		return nil, fmt.Errorf("result versions of checkup: %w", err)
	}
	return versions, nil
}
