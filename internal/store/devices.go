package store

import (
	"context"
	"fmt"
	"time"
)

// DeviceExecutor holds the statements on devices: doctors' push tokens.
type DeviceExecutor interface {
	DeviceListForDoctor(ctx context.Context, doctorID string) ([]Device, error)
	DeviceGet(ctx context.Context, params *DeviceGetParams) (*Device, error)
	DeviceInsert(ctx context.Context, params *DeviceInsertParams) (bool, error)
	DeviceReregister(ctx context.Context, params *DeviceReregisterParams) (bool, error)
	DeviceDelete(ctx context.Context, params *DeviceDeleteParams) (bool, error)
}

// Device is a row of devices, as the doctor sees it.
type Device struct {
	Token          string     `bun:"token"`
	Platform       string     `bun:"platform"`
	DisabledAt     *time.Time `bun:"disabled_at"`
	DisabledReason string     `bun:"disabled_reason"`
	CreatedAt      time.Time  `bun:"created_at"`
	UpdatedAt      time.Time  `bun:"updated_at"`
}

// DeviceGetParams asks for DoctorID's device Token.
type DeviceGetParams struct {
	Token    string
	DoctorID string
}

// DeviceInsertParams registers Token on Platform for DoctorID at Now.
type DeviceInsertParams struct {
	Token    string
	DoctorID string
	Platform string
	Now      time.Time
}

// DeviceReregisterParams registers DoctorID's Token again, on Platform, at
// Now: it is enabled again.
type DeviceReregisterParams struct {
	Token    string
	DoctorID string
	Platform string
	Now      time.Time
}

// DeviceDeleteParams removes DoctorID's device Token.
type DeviceDeleteParams struct {
	Token    string
	DoctorID string
}

const deviceColumns = `token, platform, disabled_at, disabled_reason, created_at, updated_at`

// DeviceListForDoctor lists the doctor's devices, oldest first.
func (q *Queries) DeviceListForDoctor(ctx context.Context, doctorID string) ([]Device, error) {
	var rows []Device
	if err := q.db.NewRaw(`SELECT `+deviceColumns+` FROM devices WHERE doctor_id = ? ORDER BY created_at, token`,
		doctorID).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("load devices: %w", err)
	}
	return rows, nil
}

// DeviceGet is the doctor's device, or ErrNotFound.
func (q *Queries) DeviceGet(ctx context.Context, params *DeviceGetParams) (*Device, error) {
	var row Device
	if err := one(q.db.NewRaw(`SELECT `+deviceColumns+` FROM devices WHERE token = ? AND doctor_id = ?`,
		params.Token, params.DoctorID).Scan(ctx, &row), "load device"); err != nil {
		return nil, err
	}
	return &row, nil
}

// DeviceInsert reports whether the token was new and is now the doctor's;
// a token already registered (to anyone) is left as it is.
func (q *Queries) DeviceInsert(ctx context.Context, params *DeviceInsertParams) (bool, error) {
	res, err := q.db.NewRaw(`INSERT INTO devices (token, doctor_id, platform, disabled_reason, created_at, updated_at)
VALUES (?, ?, ?, '', ?, ?) ON CONFLICT (token) DO NOTHING`, params.Token, params.DoctorID, params.Platform, params.Now, params.Now).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("register device: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("register device: %w", err)
	}
	return n == 1, nil
}

// DeviceReregister reports whether the token is the doctor's, and so was
// updated and enabled.
func (q *Queries) DeviceReregister(ctx context.Context, params *DeviceReregisterParams) (bool, error) {
	res, err := q.db.NewRaw(`UPDATE devices SET platform = ?, disabled_at = NULL, disabled_reason = '', updated_at = ? WHERE token = ? AND doctor_id = ?`,
		params.Platform, params.Now, params.Token, params.DoctorID).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("register device again: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("register device again: %w", err)
	}
	return n > 0, nil
}

// DeviceDelete reports whether the doctor had the device.
func (q *Queries) DeviceDelete(ctx context.Context, params *DeviceDeleteParams) (bool, error) {
	res, err := q.db.NewRaw(`DELETE FROM devices WHERE token = ? AND doctor_id = ?`, params.Token, params.DoctorID).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("remove device: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("remove device: %w", err)
	}
	return n > 0, nil
}
