package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
)

// DelegationExecutor holds the statements on delegations: covers between
// doctors.
type DelegationExecutor interface {
	DelegationInsert(ctx context.Context, row *Delegation) error
	DelegationGet(ctx context.Context, params *DelegationGetParams) (*Delegation, error)
	DelegationGetNext(ctx context.Context, params *DelegationGetNextParams) (*Delegation, error)
	DelegationListLive(ctx context.Context, params *DelegationListLiveParams) ([]Delegation, error)
	DelegationListForCovering(ctx context.Context, params *DelegationListForCoveringParams) ([]Delegation, error)
	DelegationEndCurrent(ctx context.Context, params *DelegationEndCurrentParams) error
	DelegationDeleteFuture(ctx context.Context, params *DelegationDeleteFutureParams) error
	DelegationDecide(ctx context.Context, params *DelegationDecideParams) (bool, error)
}

// Delegation is a row of delegations, a cover: CoveringDoctorID covers for
// DoctorID from StartsAt (inclusive) to EndsAt (exclusive).
type Delegation struct {
	bun.BaseModel `bun:"table:delegations"`

	ID               string    `bun:"id,pk"`
	DoctorID         string    `bun:"doctor_id"`
	CoveringDoctorID string    `bun:"covering_doctor_id"`
	StartsAt         time.Time `bun:"starts_at"`
	EndsAt           time.Time `bun:"ends_at"`
	CreatedAt        time.Time `bun:"created_at"`
	// Status is domain.CoverPending until the covering doctor (or an
	// operator) decides.
	Status    string     `bun:"status"`
	DecidedAt *time.Time `bun:"decided_at"`
	// DecidedBy is who decided: "doctor:<id>" or "api_key:<id>".
	DecidedBy string `bun:"decided_by"`
}

// DelegationGetParams asks for cover ID; with CoveringDoctorID, only if it
// is asked of that doctor.
type DelegationGetParams struct {
	ID               string
	CoveringDoctorID string
}

// DelegationGetNextParams asks for DoctorID's cover at At, or else their
// next one.
type DelegationGetNextParams struct {
	DoctorID string
	At       time.Time
}

// DelegationListLiveParams asks for the pending or accepted covers of
// DoctorID by CoveringDoctorID that end after At.
type DelegationListLiveParams struct {
	DoctorID         string
	CoveringDoctorID string
	At               time.Time
}

// DelegationListForCoveringParams asks for the first Limit covers asked of
// CoveringDoctorID that end after At.
type DelegationListForCoveringParams struct {
	CoveringDoctorID string
	At               time.Time
	Limit            int
}

// DelegationEndCurrentParams ends DoctorID's cover running at At, at At.
type DelegationEndCurrentParams struct {
	DoctorID string
	At       time.Time
}

// DelegationDeleteFutureParams removes DoctorID's covers starting after At.
type DelegationDeleteFutureParams struct {
	DoctorID string
	At       time.Time
}

// DelegationDecideParams moves cover ID from status From to Status,
// decided at DecidedAt by DecidedBy.
type DelegationDecideParams struct {
	ID        string
	From      string
	Status    string
	DecidedAt time.Time
	DecidedBy string
}

func (q *Queries) DelegationInsert(ctx context.Context, row *Delegation) error {
	if _, err := q.db.NewInsert().Model(row).Exec(ctx); err != nil {
		return fmt.Errorf("store cover: %w", err)
	}
	return nil
}

// DelegationGet is the cover, or ErrNotFound.
func (q *Queries) DelegationGet(ctx context.Context, params *DelegationGetParams) (*Delegation, error) {
	var row Delegation
	sel := q.db.NewSelect().Model(&row).Where("id = ?", params.ID)
	if params.CoveringDoctorID != "" {
		sel = sel.Where("covering_doctor_id = ?", params.CoveringDoctorID)
	}
	if err := one(sel.Scan(ctx), "load cover"); err != nil {
		return nil, err
	}
	return &row, nil
}

// DelegationGetNext is the doctor's first cover by start that has not
// ended at At, whatever its status, or ErrNotFound.
func (q *Queries) DelegationGetNext(ctx context.Context, params *DelegationGetNextParams) (*Delegation, error) {
	var row Delegation
	if err := one(q.db.NewSelect().Model(&row).Where("doctor_id = ?", params.DoctorID).Where("ends_at > ?", params.At).
		Order("starts_at", "id").Limit(1).Scan(ctx), "load cover"); err != nil {
		return nil, err
	}
	return &row, nil
}

// DelegationListLive lists the pending or accepted covers of one doctor by
// another that have not ended.
func (q *Queries) DelegationListLive(ctx context.Context, params *DelegationListLiveParams) ([]Delegation, error) {
	var rows []Delegation
	if err := q.db.NewSelect().Model(&rows).
		Where("doctor_id = ?", params.DoctorID).Where("covering_doctor_id = ?", params.CoveringDoctorID).
		Where("ends_at > ?", params.At).Where("status IN (?)", bun.List([]string{domain.CoverPending, domain.CoverAccepted})).
		Scan(ctx); err != nil {
		return nil, fmt.Errorf("read current cover: %w", err)
	}
	return rows, nil
}

// DelegationListForCovering lists, by start, the covers asked of a doctor
// that have not ended.
func (q *Queries) DelegationListForCovering(ctx context.Context, params *DelegationListForCoveringParams) ([]Delegation, error) {
	var rows []Delegation
	if err := q.db.NewSelect().Model(&rows).Where("covering_doctor_id = ?", params.CoveringDoctorID).Where("ends_at > ?", params.At).
		Order("starts_at", "id").Limit(int64(params.Limit)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list covers asked: %w", err)
	}
	return rows, nil
}

// DelegationEndCurrent ends the doctor's running cover at At.
func (q *Queries) DelegationEndCurrent(ctx context.Context, params *DelegationEndCurrentParams) error {
	if _, err := q.db.NewUpdate().Model((*Delegation)(nil)).Set("ends_at = ?", params.At).
		Where("doctor_id = ?", params.DoctorID).Where("starts_at <= ?", params.At).Where("ends_at > ?", params.At).
		Exec(ctx); err != nil {
		return fmt.Errorf("end current cover: %w", err)
	}
	return nil
}

// DelegationDeleteFuture removes the doctor's covers that start after At.
func (q *Queries) DelegationDeleteFuture(ctx context.Context, params *DelegationDeleteFutureParams) error {
	if _, err := q.db.NewDelete().Model((*Delegation)(nil)).
		Where("doctor_id = ?", params.DoctorID).Where("starts_at > ?", params.At).
		Exec(ctx); err != nil {
		return fmt.Errorf("remove future cover: %w", err)
	}
	return nil
}

// DelegationDecide reports whether the cover was still in status From and
// so was moved to Status.
func (q *Queries) DelegationDecide(ctx context.Context, params *DelegationDecideParams) (bool, error) {
	res, err := q.db.NewUpdate().Model((*Delegation)(nil)).Set("status = ?", params.Status).Set("decided_at = ?", params.DecidedAt).
		Set("decided_by = ?", params.DecidedBy).Where("id = ?", params.ID).Where("status = ?", params.From).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("decide cover: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("decide cover: %w", err)
	}
	return n == 1, nil
}
