package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/rfd-notify/rfd/internal/store"
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

func deviceView(r store.Device) Device {
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

func registerDevices(doctor *huma.Group, h *service) {
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

func (h *service) devicesOf(ctx context.Context, doctorID string) ([]Device, error) {
	rows, err := store.NewQueries(h.db).DeviceListForDoctor(ctx, doctorID)
	if err != nil {
		return nil, err
	}
	out := make([]Device, 0, len(rows))
	for _, r := range rows {
		out = append(out, deviceView(r))
	}
	return out, nil
}

func (h *service) putDevice(ctx context.Context, in *putDeviceInput) (*putDeviceOutput, error) {
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
	q := store.NewQueries(h.db)
	created, err := q.DeviceInsert(ctx, &store.DeviceInsertParams{Token: in.Token, DoctorID: doc.ID, Platform: in.Body.Platform, Now: now})
	if err != nil {
		return nil, h.fail(ctx, "putDevice", err)
	}
	if created {
		status = http.StatusCreated
	} else {
		theirs, err := q.DeviceReregister(ctx, &store.DeviceReregisterParams{Token: in.Token, DoctorID: doc.ID, Platform: in.Body.Platform, Now: now})
		if err != nil {
			return nil, h.fail(ctx, "putDevice", err)
		}
		if !theirs {
			return nil, huma.Error409Conflict("this push token is registered to another account; it must be removed there first")
		}
	}
	row, err := q.DeviceGet(ctx, &store.DeviceGetParams{Token: in.Token, DoctorID: doc.ID})
	if err != nil {
		return nil, h.fail(ctx, "putDevice", err)
	}
	return &putDeviceOutput{Status: status, Body: deviceView(*row)}, nil
}

func (h *service) deleteDevice(ctx context.Context, in *deleteDeviceInput) (*struct{}, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	removed, err := store.NewQueries(h.db).DeviceDelete(ctx, &store.DeviceDeleteParams{Token: in.Token, DoctorID: doc.ID})
	if err != nil {
		return nil, h.fail(ctx, "deleteDevice", err)
	}
	if !removed {
		return nil, huma.Error404NotFound("no such device")
	}
	return nil, nil
}
