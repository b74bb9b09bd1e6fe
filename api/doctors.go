package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/store"
)

// Doctor is a referring doctor as integrators see them: who they are, not
// how to reach them.
type Doctor struct {
	ID             string    `json:"id" example:"0b8e4b6e-6f57-5c5a-9d0e-2a0c1f6f3b7a"`
	ExternalUserID string    `json:"external_user_id" example:"usr-10042"`
	Name           string    `json:"name" example:"Dr. Anan Srisuk"`
	LicenceNumber  string    `json:"licence_number" example:"MD-10042"`
	Specialty      string    `json:"specialty" example:"Cardiology"`
	Clinic         string    `json:"clinic" example:"Sukhumvit Heart Clinic"`
	Locale         string    `json:"locale" example:"en"`
	TimeZone       string    `json:"time_zone" example:"Asia/Bangkok"`
	Active         bool      `json:"active" example:"true"`
	CreatedAt      time.Time `json:"created_at" example:"2026-11-25T02:00:00Z"`
	UpdatedAt      time.Time `json:"updated_at" example:"2026-11-25T02:00:00Z"`
}

type getDoctorInput struct {
	ID string `path:"id" maxLength:"200" doc:"The doctor's id, or their external user id." example:"usr-10042"`
}

type doctorOutput struct {
	Body Doctor
}

func registerDoctors(integrator *huma.Group, h *service) {
	huma.Register(integrator, huma.Operation{
		OperationID: "getDoctor",
		Method:      http.MethodGet,
		Path:        "/v1/doctors/{id}",
		Summary:     "Get a referring doctor",
		Description: "Looks a doctor up by this service's id or by their external user id (user management's), e.g. before sending them a notification. " +
			"Needs an API key with scope doctors:read.",
		Tags:     []string{"Doctors"},
		Metadata: scopes(auth.ScopeDoctorsRead),
		Errors:   []int{http.StatusNotFound},
	}, h.getDoctor)
}

func (h *service) getDoctor(ctx context.Context, in *getDoctorInput) (*doctorOutput, error) {
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	d, err := store.NewQueries(h.db).DoctorGetByIDOrExternalID(ctx, in.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, huma.Error404NotFound("no such doctor")
	}
	if err != nil {
		return nil, h.fail(ctx, "getDoctor", err)
	}
	return &doctorOutput{Body: Doctor{
		ID: d.ID, ExternalUserID: d.ExternalUserID, Name: d.Name, LicenceNumber: d.LicenceNumber, Specialty: d.Specialty,
		Clinic: d.Clinic, Locale: d.Locale, TimeZone: d.TimeZone, Active: d.Active, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
	}}, nil
}
