package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/store"
)

// Dashboard is the portal's summary for the doctor.
type Dashboard struct {
	UnreadCount            int            `json:"unread_count" doc:"Unread notifications." example:"7"`
	UnacknowledgedCritical int            `json:"unacknowledged_critical" doc:"Active critical results not acknowledged yet." example:"1"`
	NewResultsLast7Days    int            `json:"new_results_last_7_days" doc:"Result notifications (new, corrected, critical) of the last 7 days." example:"5"`
	OrdersByStatus         map[string]int `json:"orders_by_status" doc:"The doctor's orders by current status; every status is listed." example:"{\"placed\":1,\"scheduled\":0,\"sample_collected\":2,\"in_progress\":1,\"completed\":9,\"cancelled\":0}"`
	GeneratedAt            time.Time      `json:"generated_at" example:"2026-11-25T03:00:00Z"`
}

type dashboardOutput struct {
	Body Dashboard
}

func registerDashboard(doctor *huma.Group, h *service) {
	huma.Register(doctor, huma.Operation{
		OperationID: "getDashboard",
		Method:      http.MethodGet,
		Path:        "/v1/dashboard",
		Summary:     "Get the doctor's dashboard",
		Description: "Counts for the portal's home page: unread notifications, unacknowledged critical results, new results in the last 7 days, and orders by status.",
		Tags:        []string{"Dashboard"},
	}, h.getDashboard)
}

func (h *service) getDashboard(ctx context.Context, _ *struct{}) (*dashboardOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	now := h.now().UTC()
	q := store.NewQueries(h.db)
	counts, err := q.NotificationCountForDashboard(ctx, &store.NotificationDashboardCountsParams{DoctorID: doc.ID,
		ResultTypes:  []string{templates.TypeResultAvailable, templates.TypeResultCorrected, templates.TypeCriticalResult},
		ResultsSince: now.Add(-7 * 24 * time.Hour)})
	if err != nil {
		return nil, h.fail(ctx, "getDashboard", err)
	}
	byStatus, err := q.OrderCountByStatus(ctx, &store.OrderVisibleTo{DoctorExternalID: doc.ExternalUserID, DoctorID: doc.ID})
	if err != nil {
		return nil, h.fail(ctx, "getDashboard", err)
	}
	orders := make(map[string]int, len(config.OrderStatuses))
	for _, st := range config.OrderStatuses {
		orders[st] = 0
	}
	for _, r := range byStatus {
		orders[r.Status] = r.N
	}
	return &dashboardOutput{Body: Dashboard{
		UnreadCount: counts.Unread, UnacknowledgedCritical: counts.Critical, NewResultsLast7Days: counts.Results,
		OrdersByStatus: orders, GeneratedAt: now,
	}}, nil
}
