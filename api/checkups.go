package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/rfd-notify/rfd/internal/store"
)

// Checkup is a checkup of a referred patient with every result version.
type Checkup struct {
	ID             string          `json:"id" example:"CHK-2026-0001"`
	OrderID        string          `json:"order_id,omitempty" example:"ORD-2026-0001"`
	PatientRef     string          `json:"patient_ref" example:"PT-1001"`
	Status         string          `json:"status" enum:"scheduled,completed,resulted,cancelled" example:"resulted"`
	ScheduledAt    *time.Time      `json:"scheduled_at,omitempty" example:"2026-11-24T02:00:00Z"`
	CompletedAt    *time.Time      `json:"completed_at,omitempty" example:"2026-11-25T02:00:00Z"`
	LastEventAt    time.Time       `json:"last_event_at" example:"2026-11-25T02:30:00Z"`
	CreatedAt      time.Time       `json:"created_at" example:"2026-11-24T01:00:00Z"`
	UpdatedAt      time.Time       `json:"updated_at" example:"2026-11-25T02:30:01Z"`
	ResultVersions []ResultVersion `json:"result_versions" doc:"Every version received, oldest first; the highest is current."`
}

// ResultVersion is one version of a checkup's result.
type ResultVersion struct {
	Version    int          `json:"version" example:"1"`
	Status     string       `json:"status" enum:"preliminary,final,corrected,cancelled,entered_in_error" example:"final"`
	Critical   bool         `json:"critical" example:"true"`
	Current    bool         `json:"current" doc:"The newest version: the one that counts (withdrawn when its status is cancelled or entered_in_error)." example:"true"`
	Summary    string       `json:"summary,omitempty" example:"Hyperkalaemia"`
	Tests      []TestResult `json:"tests"`
	OccurredAt time.Time    `json:"occurred_at" example:"2026-11-25T02:30:00Z"`
	ReceivedAt time.Time    `json:"received_at" example:"2026-11-25T02:30:01Z"`
}

// TestResult is one test of a result, its value as reported.
type TestResult struct {
	Code  string `json:"code" example:"K"`
	Name  string `json:"name" example:"Potassium"`
	Value string `json:"value" example:"6.9"`
	Unit  string `json:"unit,omitempty" example:"mmol/L"`
	Flag  string `json:"flag,omitempty" example:"HH"`
}

type getCheckupInput struct {
	ID string `path:"id" maxLength:"200" doc:"The checkup's id." example:"CHK-2026-0001"`
}

type checkupOutput struct {
	Body Checkup
}

func registerCheckups(doctor *huma.Group, h *service) {
	huma.Register(doctor, huma.Operation{
		OperationID: "getCheckup",
		Method:      http.MethodGet,
		Path:        "/v1/checkups/{id}",
		Summary:     "Get a checkup with its result versions",
		Description: "The checkup and every version of its result (preliminary, final, corrected, withdrawn). A checkup of another doctor's patient is 404. " +
			"Every read is audited.",
		Tags:   []string{"Checkups"},
		Errors: []int{http.StatusNotFound},
	}, h.getCheckup)
}

func (h *service) getCheckup(ctx context.Context, in *getCheckupInput) (*checkupOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	q := store.NewQueries(h.db)
	row, err := q.CheckupGetVisible(ctx, &store.CheckupGetVisibleParams{ID: in.ID, DoctorExternalID: doc.ExternalUserID, DoctorID: doc.ID})
	if errors.Is(err, store.ErrNotFound) {
		if err := h.audit(ctx, h.db, "checkup.view", "checkup", in.ID, outcomeNotFound, nil); err != nil {
			return nil, h.fail(ctx, "getCheckup", err)
		}
		return nil, huma.Error404NotFound("no such checkup")
	}
	if err != nil {
		return nil, h.fail(ctx, "getCheckup", err)
	}
	versions, err := q.CheckupListResults(ctx, row.ID)
	if err != nil {
		return nil, h.fail(ctx, "getCheckup", err)
	}
	out := Checkup{
		ID: row.ID, OrderID: row.OrderID, PatientRef: row.PatientRef, Status: row.Status,
		ScheduledAt: utcPtr(row.ScheduledAt), CompletedAt: utcPtr(row.CompletedAt),
		LastEventAt: row.LastEventAt.UTC(), CreatedAt: row.CreatedAt.UTC(), UpdatedAt: row.UpdatedAt.UTC(),
		ResultVersions: make([]ResultVersion, 0, len(versions)),
	}
	for i, v := range versions {
		var body struct {
			Summary string       `json:"summary"`
			Tests   []TestResult `json:"tests"`
		}
		// A stored result that does not decode still lists its version.
		_ = json.Unmarshal([]byte(v.Result), &body)
		if body.Tests == nil {
			body.Tests = []TestResult{}
		}
		out.ResultVersions = append(out.ResultVersions, ResultVersion{
			Version: v.Version, Status: v.Status, Critical: v.Critical, Current: i == len(versions)-1,
			Summary: body.Summary, Tests: body.Tests, OccurredAt: v.OccurredAt.UTC(), ReceivedAt: v.ReceivedAt.UTC(),
		})
	}
	if err := h.audit(ctx, h.db, "checkup.view", "checkup", row.ID, outcomeSuccess, nil); err != nil {
		return nil, h.fail(ctx, "getCheckup", err)
	}
	return &checkupOutput{Body: out}, nil
}
