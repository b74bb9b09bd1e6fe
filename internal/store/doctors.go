package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
)

// DoctorExecutor holds the statements on doctors.
type DoctorExecutor interface {
	DoctorGetByExternalID(ctx context.Context, externalID string) (domain.Doctor, error)
	DoctorGetByID(ctx context.Context, id string) (domain.Doctor, error)
	DoctorGetByIDOrExternalID(ctx context.Context, id string) (domain.Doctor, error)
	DoctorListCovering(ctx context.Context, params *DoctorListCoveringParams) ([]domain.Doctor, error)
	DoctorLockForUpdate(ctx context.Context, id string) error
	DoctorUpsertProfile(ctx context.Context, params *DoctorUpsertProfileParams) error
}

// Doctor is a row of doctors: a referring doctor, registered from user
// management. The methods return it as a domain.Doctor.
type Doctor struct {
	bun.BaseModel `bun:"table:doctors"`

	ID              string    `bun:"id,pk"`
	ExternalUserID  string    `bun:"external_user_id"`
	Name            string    `bun:"name"`
	LicenceNumber   string    `bun:"licence_number"`
	Specialty       string    `bun:"specialty"`
	Clinic          string    `bun:"clinic"`
	Email           string    `bun:"email"`
	Phone           string    `bun:"phone"`
	Locale          string    `bun:"locale"`
	TimeZone        string    `bun:"time_zone"`
	Active          bool      `bun:"active"`
	NotificationSeq int64     `bun:"notification_seq"`
	ProfileVersion  time.Time `bun:"profile_version"`
	CreatedAt       time.Time `bun:"created_at"`
	UpdatedAt       time.Time `bun:"updated_at"`
}

// Domain is the row as the domain's doctor.
func (d Doctor) Domain() domain.Doctor {
	return domain.Doctor{
		ID: d.ID, ExternalUserID: d.ExternalUserID, Name: d.Name, LicenceNumber: d.LicenceNumber,
		Specialty: d.Specialty, Clinic: d.Clinic, Email: d.Email, Phone: d.Phone, Locale: d.Locale,
		TimeZone: d.TimeZone, Active: d.Active, NotificationSeq: d.NotificationSeq, ProfileVersion: d.ProfileVersion,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
}

// DoctorListCoveringParams asks for the doctors covering for DoctorID at At.
type DoctorListCoveringParams struct {
	DoctorID string
	At       time.Time
}

// DoctorUpsertProfileParams is a doctor's profile as user management sent
// it at ProfileVersion, stored at Now.
type DoctorUpsertProfileParams struct {
	ID             string
	ExternalUserID string
	Name           string
	LicenceNumber  string
	Specialty      string
	Clinic         string
	Email          string
	Phone          string
	Locale         string
	TimeZone       string
	Active         bool
	ProfileVersion time.Time
	Now            time.Time
}

// DoctorGetByExternalIDQuery is DoctorGetByExternalID's statement, with its
// columns in the order it scans them.
const DoctorGetByExternalIDQuery = `SELECT id, external_user_id, name, licence_number, specialty, clinic, email, phone, locale,
	time_zone, active, notification_seq, profile_version, created_at, updated_at
FROM doctors WHERE external_user_id = ?`

// DoctorGetByExternalID is the doctor with this user-management id, or
// ErrNotFound.
func (q *Queries) DoctorGetByExternalID(ctx context.Context, externalID string) (domain.Doctor, error) {
	var (
		d     domain.Doctor
		found bool
	)
	// Every doctor API request starts here: scanned by hand, not by bun.
	err := Rows(ctx, q.db, DoctorGetByExternalIDQuery, []any{externalID}, func(scan Scan) error {
		found = true
		return scan(&d.ID, &d.ExternalUserID, &d.Name, &d.LicenceNumber, &d.Specialty, &d.Clinic, &d.Email, &d.Phone, &d.Locale,
			&d.TimeZone, &d.Active, &d.NotificationSeq, &d.ProfileVersion, &d.CreatedAt, &d.UpdatedAt)
	})
	if err != nil {
		return domain.Doctor{}, fmt.Errorf("load doctor: %w", err)
	}
	if !found {
		return domain.Doctor{}, ErrNotFound
	}
	return d, nil
}

// DoctorGetByID is the doctor with this service's id, or ErrNotFound.
func (q *Queries) DoctorGetByID(ctx context.Context, id string) (domain.Doctor, error) {
	var d Doctor
	return q.doctorScan(ctx, q.db.NewSelect().Model(&d).Where("id = ?", id), &d)
}

// DoctorGetByIDOrExternalID is the doctor whose id or user-management id
// is id, or ErrNotFound.
func (q *Queries) DoctorGetByIDOrExternalID(ctx context.Context, id string) (domain.Doctor, error) {
	var d Doctor
	return q.doctorScan(ctx, q.db.NewSelect().Model(&d).Where("id = ? OR external_user_id = ?", id, id).Limit(1), &d)
}

func (q *Queries) doctorScan(ctx context.Context, sel *bun.SelectQuery, d *Doctor) (domain.Doctor, error) {
	if err := one(sel.Scan(ctx), "load doctor"); err != nil {
		return domain.Doctor{}, err
	}
	return d.Domain(), nil
}

// DoctorListCovering lists, by id, the doctors covering for a doctor at a
// time: active doctors who accepted (or for whom an operator approved) a
// cover that has started and not ended.
func (q *Queries) DoctorListCovering(ctx context.Context, params *DoctorListCoveringParams) ([]domain.Doctor, error) {
	var rows []Doctor
	err := q.db.NewSelect().Model(&rows).
		Where("id IN (SELECT covering_doctor_id FROM delegations WHERE doctor_id = ? AND status = ? AND starts_at <= ? AND ends_at > ?)",
			params.DoctorID, domain.CoverAccepted, params.At.UTC(), params.At.UTC()).
		Where("active").
		Order("id").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("load covering doctors: %w", err)
	}
	docs := make([]domain.Doctor, len(rows))
	for i, r := range rows {
		docs[i] = r.Domain()
	}
	return docs, nil
}

// DoctorLockForUpdate locks the doctor's row until the end of the
// transaction, on PostgreSQL, to serialise concurrent changes of one
// doctor's settings. On SQLite, whose transactions take the write lock up
// front, it does nothing.
func (q *Queries) DoctorLockForUpdate(ctx context.Context, id string) error {
	if !q.pg {
		return nil
	}
	if _, err := q.db.NewRaw("SELECT id FROM doctors WHERE id = ? FOR UPDATE", id).Exec(ctx); err != nil {
		return fmt.Errorf("lock doctor: %w", err)
	}
	return nil
}

// DoctorUpsertProfile inserts the doctor, or updates their profile when
// it is not older than the stored one (a late, older event changes
// nothing). A new doctor's notification sequence starts at 0.
func (q *Queries) DoctorUpsertProfile(ctx context.Context, params *DoctorUpsertProfileParams) error {
	p := params
	if _, err := q.db.NewRaw(`INSERT INTO doctors (id, external_user_id, name, licence_number, specialty, clinic, email, phone, locale, time_zone, active, notification_seq, profile_version, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)
ON CONFLICT (external_user_id) DO UPDATE SET
	name = excluded.name, licence_number = excluded.licence_number, specialty = excluded.specialty,
	clinic = excluded.clinic, email = excluded.email, phone = excluded.phone, locale = excluded.locale,
	time_zone = excluded.time_zone, active = excluded.active, profile_version = excluded.profile_version,
	updated_at = excluded.updated_at
WHERE excluded.profile_version >= doctors.profile_version`,
		p.ID, p.ExternalUserID, p.Name, p.LicenceNumber, p.Specialty, p.Clinic, p.Email, p.Phone, p.Locale, p.TimeZone, p.Active,
		p.ProfileVersion, p.Now, p.Now).Exec(ctx); err != nil {
		return fmt.Errorf("upsert doctor: %w", err)
	}
	return nil
}
