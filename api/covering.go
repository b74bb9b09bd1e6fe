package api

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/domain"
	"github.com/rfd-notify/rfd/notify"
)

// Covering is the doctor covering for the authenticated doctor: while the
// cover applies, that doctor receives a copy of each of their
// notifications (its on_behalf_of is this doctor's id).
type Covering struct {
	ID               string    `json:"id" doc:"The delegation's id." example:"3f0d6a0e-5b1c-4f7e-9c1e-6b8f2a7d4c10"`
	DoctorID         string    `json:"doctor_id" doc:"The covering doctor's id." example:"9a7c1e0b-2d4f-5b6a-8c3e-1f0a2b3c4d5e"`
	DoctorExternalID string    `json:"doctor_external_id" doc:"The covering doctor's user id in user management." example:"usr-10077"`
	DoctorName       string    `json:"doctor_name" example:"Dr. Malee Chaiyaporn"`
	StartsAt         time.Time `json:"starts_at" example:"2026-12-01T00:00:00Z"`
	EndsAt           time.Time `json:"ends_at" example:"2026-12-15T00:00:00Z"`
	Active           bool      `json:"active" doc:"Whether the cover applies now; false while it has yet to start." example:"false"`
}

// CoveringRequest names the doctor who covers for the authenticated doctor
// and when.
type CoveringRequest struct {
	_                struct{}  `nullable:"true"`
	DoctorID         string    `json:"doctor_id,omitempty" doc:"The covering doctor's id; give it or doctor_external_id." example:"9a7c1e0b-2d4f-5b6a-8c3e-1f0a2b3c4d5e"`
	DoctorExternalID string    `json:"doctor_external_id,omitempty" doc:"The covering doctor's user id in user management; give it or doctor_id." example:"usr-10077"`
	StartsAt         time.Time `json:"starts_at" doc:"When the cover starts." example:"2026-12-01T00:00:00Z"`
	EndsAt           time.Time `json:"ends_at" doc:"When the cover ends; after starts_at and in the future." example:"2026-12-15T00:00:00Z"`
}

// CoveringChange is the covering field of a preferences patch: absent keeps
// the cover, null ends the current or future cover, and an object replaces
// it.
type CoveringChange struct {
	// Set is whether the field was present (null included).
	Set bool
	// Value is the new cover; nil with Set ends it.
	Value *CoveringRequest
}

// UnmarshalJSON records that the field was present, also when null.
func (c *CoveringChange) UnmarshalJSON(b []byte) error {
	c.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		c.Value = nil
		return nil
	}
	var v CoveringRequest
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	c.Value = &v
	return nil
}

// MarshalJSON writes the cover, or null.
func (c CoveringChange) MarshalJSON() ([]byte, error) {
	if c.Value == nil {
		return []byte("null"), nil
	}
	return json.Marshal(c.Value)
}

// Schema is CoveringRequest's, which accepts null.
func (CoveringChange) Schema(r huma.Registry) *huma.Schema {
	return r.Schema(reflect.TypeFor[CoveringRequest](), true, "")
}

// delegationRow is a stored cover: covering_doctor_id covers for doctor_id
// from starts_at (inclusive) to ends_at (exclusive).
type delegationRow struct {
	bun.BaseModel `bun:"table:delegations"`

	ID               string    `bun:"id,pk"`
	DoctorID         string    `bun:"doctor_id"`
	CoveringDoctorID string    `bun:"covering_doctor_id"`
	StartsAt         time.Time `bun:"starts_at"`
	EndsAt           time.Time `bun:"ends_at"`
	CreatedAt        time.Time `bun:"created_at"`
}

// changeCovering applies a covering change for doc at now within tx: the
// doctor's current cover ends now and future ones are removed; then the
// new one, if any, is stored. Past covers are kept as history.
func changeCovering(ctx context.Context, tx bun.Tx, doc domain.Doctor, c CoveringChange, now time.Time) error {
	if !c.Set {
		return nil
	}
	var row *delegationRow
	if c.Value != nil {
		var err error
		if row, err = newDelegation(ctx, tx, doc, *c.Value, now); err != nil {
			return err
		}
	}
	if _, err := tx.NewUpdate().Model((*delegationRow)(nil)).Set("ends_at = ?", now).
		Where("doctor_id = ?", doc.ID).Where("starts_at <= ?", now).Where("ends_at > ?", now).
		Exec(ctx); err != nil {
		return fmt.Errorf("end current cover: %w", err)
	}
	if _, err := tx.NewDelete().Model((*delegationRow)(nil)).
		Where("doctor_id = ?", doc.ID).Where("starts_at > ?", now).
		Exec(ctx); err != nil {
		return fmt.Errorf("remove future cover: %w", err)
	}
	if row == nil {
		return nil
	}
	if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
		return fmt.Errorf("store cover: %w", err)
	}
	return nil
}

// newDelegation validates req for doc: one of doctor_id and
// doctor_external_id, an active doctor other than doc, ends_at after
// starts_at and after now. Refusals are 422 at the failing field.
func newDelegation(ctx context.Context, tx bun.Tx, doc domain.Doctor, req CoveringRequest, now time.Time) (*delegationRow, error) {
	invalid := func(loc, msg string) error {
		return huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Message: msg, Location: "body.covering." + loc})
	}
	var (
		cov   domain.Doctor
		found bool
		field string
		err   error
	)
	switch {
	case req.DoctorID != "" && req.DoctorExternalID != "":
		return nil, invalid("doctor_id", "give doctor_id or doctor_external_id, not both")
	case req.DoctorID != "":
		field = "doctor_id"
		err = tx.NewSelect().Model(&cov).Where("id = ?", req.DoctorID).Scan(ctx)
		found = err == nil
		if errors.Is(err, sql.ErrNoRows) {
			err = nil
		}
	case req.DoctorExternalID != "":
		field = "doctor_external_id"
		cov, found, err = notify.DoctorByExternalID(ctx, tx, req.DoctorExternalID)
	default:
		return nil, invalid("doctor_id", "the covering doctor is required: give doctor_id or doctor_external_id")
	}
	if err != nil {
		return nil, fmt.Errorf("load covering doctor: %w", err)
	}
	switch {
	case !found:
		return nil, invalid(field, "no such doctor")
	case cov.ID == doc.ID:
		return nil, invalid(field, "a doctor cannot cover for themself")
	case !cov.Active:
		return nil, invalid(field, "the covering doctor is not active")
	}
	start, end := req.StartsAt.UTC().Truncate(time.Microsecond), req.EndsAt.UTC().Truncate(time.Microsecond)
	if !end.After(start) {
		return nil, invalid("ends_at", "ends_at must be after starts_at")
	}
	if !end.After(now) {
		return nil, invalid("ends_at", "ends_at must be in the future")
	}
	return &delegationRow{ID: uuid.NewString(), DoctorID: doc.ID, CoveringDoctorID: cov.ID,
		StartsAt: start, EndsAt: end, CreatedAt: now}, nil
}

// coveringOf is doctorID's current cover, or else the next one; nil when
// there is none.
func coveringOf(ctx context.Context, db bun.IDB, doctorID string, now time.Time) (*Covering, error) {
	var row delegationRow
	err := db.NewSelect().Model(&row).Where("doctor_id = ?", doctorID).Where("ends_at > ?", now).
		Order("starts_at", "id").Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load cover: %w", err)
	}
	var cov domain.Doctor
	if err := db.NewSelect().Model(&cov).Where("id = ?", row.CoveringDoctorID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("load covering doctor: %w", err)
	}
	return &Covering{
		ID: row.ID, DoctorID: cov.ID, DoctorExternalID: cov.ExternalUserID, DoctorName: cov.Name,
		StartsAt: row.StartsAt.UTC(), EndsAt: row.EndsAt.UTC(), Active: !row.StartsAt.After(now),
	}, nil
}
