package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// Device is a push device of the doctor.
type Device struct {
	Token          string     `json:"token" doc:"The push token (FCM registration token)." example:"fcm-token-eXaMpLe0123:APA91bH"`
	Platform       string     `json:"platform" enum:"android,ios,web" example:"android"`
	Disabled       bool       `json:"disabled" doc:"The push provider reported the token dead; registering it again re-enables it." example:"false"`
	DisabledReason string     `json:"disabled_reason,omitempty" example:"UNREGISTERED"`
	CreatedAt      time.Time  `json:"created_at" example:"2026-11-25T02:00:00Z"`
	UpdatedAt      time.Time  `json:"updated_at" example:"2026-11-25T02:00:00Z"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty" example:"2026-11-26T02:00:00Z"`
}

type deviceRow struct {
	Token          string     `bun:"token"`
	Platform       string     `bun:"platform"`
	DisabledAt     *time.Time `bun:"disabled_at"`
	DisabledReason string     `bun:"disabled_reason"`
	CreatedAt      time.Time  `bun:"created_at"`
	UpdatedAt      time.Time  `bun:"updated_at"`
}

func (r deviceRow) view() Device {
	d := Device{Token: r.Token, Platform: r.Platform, Disabled: r.DisabledAt != nil, DisabledReason: r.DisabledReason,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if r.DisabledAt != nil {
		t := r.DisabledAt.UTC()
		d.DisabledAt = &t
	}
	return d
}

// DeviceRegistration is what PUT sends about the device.
type DeviceRegistration struct {
	Platform string `json:"platform" enum:"android,ios,web" doc:"The device's platform." example:"android"`
}

type putDeviceInput struct {
	Token string `path:"token" minLength:"16" maxLength:"512" pattern:"^[A-Za-z0-9_:.\\-]+$" patternDescription:"letters, digits and _ : . -" doc:"The push token." example:"fcm-token-eXaMpLe0123:APA91bH"`
	Body  DeviceRegistration
}

type putDeviceOutput struct {
	Status int
	Body   Device
}

type deleteDeviceInput struct {
	Token string `path:"token" minLength:"16" maxLength:"512" pattern:"^[A-Za-z0-9_:.\\-]+$" patternDescription:"letters, digits and _ : . -" doc:"The push token." example:"fcm-token-eXaMpLe0123:APA91bH"`
}

func registerDevices(doctor *huma.Group, h *handlers) {
	put := huma.Operation{
		OperationID: "putDevice",
		Method:      http.MethodPut,
		Path:        "/v1/me/devices/{token}",
		Summary:     "Register a push device",
		Description: "Registers the token for the doctor's push notifications: 201 when new, 200 when it was already theirs (a disabled token is re-enabled). " +
			"A token registered to another doctor is 409: that doctor's app must remove it first (DELETE on sign-out).",
		Tags:          []string{"Me"},
		Errors:        []int{http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge},
		DefaultStatus: http.StatusCreated,
	}
	huma.Register(doctor, put, h.putDevice)
	// The same device answers 200 when it was already registered.
	if item := doctor.OpenAPI().Paths[put.Path]; item != nil && item.Put != nil {
		if created := item.Put.Responses["201"]; created != nil {
			created.Description = "Registered."
			updated := *created
			updated.Description = "Already registered to the doctor; updated."
			item.Put.Responses["200"] = &updated
		}
	}
	huma.Register(doctor, huma.Operation{
		OperationID: "deleteDevice",
		Method:      http.MethodDelete,
		Path:        "/v1/me/devices/{token}",
		Summary:     "Remove a push device",
		Description: "Stops push notifications to the token. A token that is not the doctor's is 404.",
		Tags:        []string{"Me"},
		Errors:      []int{http.StatusNotFound},
	}, h.deleteDevice)
}

func (h *handlers) devicesOf(ctx context.Context, doctorID string) ([]Device, error) {
	var rows []deviceRow
	if err := h.db.NewRaw(`SELECT token, platform, disabled_at, disabled_reason, created_at, updated_at FROM devices WHERE doctor_id = ? ORDER BY created_at, token`,
		doctorID).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("load devices: %w", err)
	}
	out := make([]Device, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.view())
	}
	return out, nil
}

func (h *handlers) putDevice(ctx context.Context, in *putDeviceInput) (*putDeviceOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	now := h.now().UTC()
	status := http.StatusOK
	// Insert, or update the doctor's own row; a token of another doctor is
	// neither (no row changes) and is refused.
	res, err := h.db.NewRaw(`INSERT INTO devices (token, doctor_id, platform, disabled_reason, created_at, updated_at)
VALUES (?, ?, ?, '', ?, ?) ON CONFLICT (token) DO NOTHING`, in.Token, doc.ID, in.Body.Platform, now, now).Exec(ctx)
	if err != nil {
		return nil, h.fail(ctx, "putDevice", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		status = http.StatusCreated
	} else {
		res, err := h.db.NewRaw(`UPDATE devices SET platform = ?, disabled_at = NULL, disabled_reason = '', updated_at = ? WHERE token = ? AND doctor_id = ?`,
			in.Body.Platform, now, in.Token, doc.ID).Exec(ctx)
		if err != nil {
			return nil, h.fail(ctx, "putDevice", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, huma.Error409Conflict("this push token is registered to another account; it must be removed there first")
		}
	}
	var row deviceRow
	if err := h.db.NewRaw(`SELECT token, platform, disabled_at, disabled_reason, created_at, updated_at FROM devices WHERE token = ? AND doctor_id = ?`,
		in.Token, doc.ID).Scan(ctx, &row); err != nil {
		return nil, h.fail(ctx, "putDevice", err)
	}
	return &putDeviceOutput{Status: status, Body: row.view()}, nil
}

func (h *handlers) deleteDevice(ctx context.Context, in *deleteDeviceInput) (*struct{}, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	res, err := h.db.NewRaw(`DELETE FROM devices WHERE token = ? AND doctor_id = ?`, in.Token, doc.ID).Exec(ctx)
	if err != nil {
		return nil, h.fail(ctx, "deleteDevice", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, huma.Error404NotFound("no such device")
	}
	return nil, nil
}
