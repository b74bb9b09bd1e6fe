package api_test

import (
	"net/http"
	"testing"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/jobs/timeliness"
)

func TestCriticalTimelinessReport(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("r-1")
		f.result("CHK-R1", 1, "final", true, "Synthetic Patient", "r-1")
		key := f.apiKey("ops", auth.ScopeReportsRead)
		day := f.now.UTC().Format("2006-01-02")
		r := f.do(http.MethodGet, "/v1/admin/reports/critical-timeliness?from="+day+"&to="+day, key, nil)
		var rep timeliness.Report
		r.json(t, &rep)
		if r.status != http.StatusOK || len(rep.Days) != 1 || rep.Days[0].Critical != 1 || rep.SLASeconds != 1800 {
			t.Fatalf("report: %d %s", r.status, r.body)
		}
		f.do(http.MethodGet, "/v1/admin/reports/critical-timeliness?from="+day+"&to=2020-01-01", key, nil).problem(t, http.StatusUnprocessableEntity)
		f.do(http.MethodGet, "/v1/admin/reports/critical-timeliness?from=2026-01-01&to=2026-12-31", key, nil).problem(t, http.StatusUnprocessableEntity)
		f.do(http.MethodGet, "/v1/admin/reports/critical-timeliness?from="+day+"&to="+day, f.apiKey("poison", auth.ScopePoisonRead), nil).problem(t, http.StatusForbidden)
	})
}
