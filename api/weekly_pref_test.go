package api_test

import (
	"net/http"
	"testing"

	"github.com/rfd-notify/rfd/api"
)

// A doctor opts out of the weekly summary and back in.
func TestWeeklySummaryOptOut(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("w-1")
		tok := f.token("w-1")
		var p api.Preferences
		r := f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"weekly_summary": false})
		r.json(t, &p)
		if r.status != http.StatusOK || p.WeeklySummary {
			t.Fatalf("opt out: %d %s", r.status, r.body)
		}
		r = f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"digest": "hourly"})
		r.json(t, &p)
		if p.WeeklySummary || p.Digest != "hourly" {
			t.Fatalf("other change kept the opt-out? %s", r.body)
		}
		r = f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"weekly_summary": true})
		r.json(t, &p)
		if !p.WeeklySummary {
			t.Fatalf("opt in: %s", r.body)
		}
	})
}
