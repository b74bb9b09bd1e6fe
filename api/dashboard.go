package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/platform/config"
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

func registerDashboard(doctor *huma.Group, h *handlers) {
	huma.Register(doctor, huma.Operation{
		OperationID: "getDashboard",
		Method:      http.MethodGet,
		Path:        "/v1/dashboard",
		Summary:     "Get the doctor's dashboard",
		Description: "Counts for the portal's home page: unread notifications, unacknowledged critical results, new results in the last 7 days, and orders by status.",
		Tags:        []string{"Dashboard"},
	}, h.getDashboard)
}

func (h *handlers) getDashboard(ctx context.Context, _ *struct{}) (*dashboardOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	now := h.now().UTC()
	var counts struct {
		Unread   int `bun:"unread"`
		Critical int `bun:"critical"`
		Results  int `bun:"results"`
	}
	err = h.db.NewRaw(`SELECT
	(SELECT count(*) FROM notifications WHERE doctor_id = ? AND read_at IS NULL) AS unread,
	(SELECT count(*) FROM notifications WHERE doctor_id = ? AND category = ? AND state = ? AND acknowledged_at IS NULL) AS critical,
	(SELECT count(*) FROM notifications WHERE doctor_id = ? AND type IN (?) AND created_at >= ?) AS results`,
		doc.ID, doc.ID, domain.CategoryCriticalResults, domain.StateActive,
		doc.ID, bun.List([]string{templates.TypeResultAvailable, templates.TypeResultCorrected, templates.TypeCriticalResult}), now.Add(-7*24*time.Hour),
	).Scan(ctx, &counts)
	if err != nil {
		return nil, h.fail(ctx, "getDashboard", err)
	}
	var byStatus []struct {
		Status string `bun:"status"`
		N      int    `bun:"n"`
	}
	if err := h.db.NewRaw(`SELECT status, count(*) AS n FROM orders WHERE id IN (`+visibleOrderIDs+`) GROUP BY status`,
		doc.ExternalUserID, doc.ID).Scan(ctx, &byStatus); err != nil {
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
