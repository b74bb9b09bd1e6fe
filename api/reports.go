package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/jobs/timeliness"
	"github.com/rfd-notify/rfd/internal/store"
)

const tagReports = "Reports"

type timelinessInput struct {
	From string `query:"from" required:"true" pattern:"^[0-9]{4}-[0-9]{2}-[0-9]{2}$" doc:"First day (UTC), YYYY-MM-DD." example:"2026-11-18"`
	To   string `query:"to" required:"true" pattern:"^[0-9]{4}-[0-9]{2}-[0-9]{2}$" doc:"Last day (UTC), YYYY-MM-DD; at most 92 days after from." example:"2026-11-24"`
}

type timelinessOutput struct {
	Body timeliness.Report
}

func registerReports(operator *huma.Group, h *service, sla time.Duration) {
	oapi := operator.OpenAPI()
	if !hasTag(oapi, tagReports) {
		oapi.Tags = append(oapi.Tags, &huma.Tag{Name: tagReports, Description: "Operators' reports. They carry ids and times, never patient data."})
	}
	huma.Register(operator, huma.Operation{
		OperationID: "criticalTimeliness",
		Method:      http.MethodGet,
		Path:        "/v1/admin/reports/critical-timeliness",
		Summary:     "Critical-result timeliness",
		Description: "Per day: the critical results notified, the intervals event → notified → delivered → acknowledged (median, p90, max), " +
			"the share acknowledged within the escalation SLA (RFD_ESCALATION_SLA), and the breaches with the escalation level they reached. " +
			"Needs scope reports:read.",
		Tags:     []string{tagReports},
		Metadata: scopes(auth.ScopeReportsRead),
		Errors:   []int{http.StatusUnprocessableEntity},
	},
		func(ctx context.Context, in *timelinessInput) (*timelinessOutput, error) {
			from, err1 := time.Parse(time.DateOnly, in.From)
			to, err2 := time.Parse(time.DateOnly, in.To)
			if err1 != nil || err2 != nil {
				return nil, huma.Error422UnprocessableEntity("from and to must be dates, YYYY-MM-DD")
			}
			if to.Before(from) || to.Sub(from) >= timeliness.MaxDays*24*time.Hour {
				return nil, huma.Error422UnprocessableEntity("to must be on or after from, and at most 92 days in all",
					&huma.ErrorDetail{Location: "query.to", Message: "out of range", Value: in.To})
			}
			ctx, cancel := h.dbctx(ctx)
			defer cancel()
			rep, err := timeliness.Build(ctx, store.NewQueries(h.db), from, to, sla, h.now())
			if err != nil {
				return nil, h.fail(ctx, "criticalTimeliness", err)
			}
			return &timelinessOutput{Body: rep}, nil
		})
}
