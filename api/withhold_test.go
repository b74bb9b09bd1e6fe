package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/rfd-notify/rfd/internal/auth"
)

// phi is patient data a client submits; no error may send any of it back.
var phi = []string{"Somchai Jaidee", "PT-4711-Jaidee", "Potassium serum", "6.9 mmol/L", "Lipid panel Jaidee"}

// TestErrorsWithholdValues: 4xx answers of doctor and API-key operations,
// for bodies with bad fields next to (or inside) patient data, bodies that
// do not decode, and bad path and query parameters, never repeat what was
// submitted: no errors[].value, no value in a message or location.
func TestErrorsWithholdValues(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-a")
		writer := f.apiKey("crm", auth.ScopeNotificationsWrite)
		feed := f.apiKey("feed", auth.ScopeEventsCheckup, auth.ScopeEventsOrderHistory, auth.ScopeEventsUserCreated, auth.ScopeEventsInternalLogin)
		tok := f.token("doc-a")
		data := map[string]any{"patient_name": phi[0], "patient_ref": phi[1], "test_name": phi[2], "result_value": phi[3], "order_description": phi[4]}
		send := func(change func(body, data map[string]any)) map[string]any {
			d := map[string]any{}
			for k, v := range data {
				d[k] = v
			}
			body := map[string]any{"doctor_external_id": "doc-a", "category": "critical_results", "type": "critical_result", "data": d}
			change(body, d)
			return body
		}
		long := strings.Repeat(phi[0]+" ", 20)
		cases := []struct {
			name, method, path, token string
			body                      any
		}{
			{"bad enum beside PHI", http.MethodPost, "/v1/notifications", writer, send(func(b, _ map[string]any) { b["priority"] = phi[0] })},
			{"PHI too long", http.MethodPost, "/v1/notifications", writer, send(func(_, d map[string]any) { d["patient_name"] = long })},
			{"PHI of the wrong type", http.MethodPost, "/v1/notifications", writer, send(func(_, d map[string]any) { d["result_value"] = []string{phi[3]} })},
			{"PHI as a number field", http.MethodPost, "/v1/notifications", writer, send(func(_, d map[string]any) { d["count"] = phi[0] })},
			{"PHI as an unknown field name", http.MethodPost, "/v1/notifications", writer, send(func(_, d map[string]any) { d[phi[0]] = phi[1] })},
			{"PHI as a date", http.MethodPost, "/v1/notifications", writer, send(func(b, _ map[string]any) { b["expires_at"] = phi[0] })},
			{"missing doctor", http.MethodPost, "/v1/notifications", writer, send(func(b, _ map[string]any) { delete(b, "doctor_external_id") })},
			{"body does not decode", http.MethodPost, "/v1/notifications", writer,
				`{"doctor_external_id":"doc-a","data":{"patient_name":"` + phi[0] + `","test_name":"` + phi[2] + `"`},
			{"PHI in quiet hours", http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"quiet_hours": map[string]any{"start": phi[0], "end": phi[3]}}},
			{"PHI in the covering doctor's period", http.MethodPatch, "/v1/me/preferences", tok,
				map[string]any{"covering": map[string]any{"doctor_external_id": phi[1], "starts_at": phi[0], "ends_at": phi[3]}}},
			{"PHI in a query", http.MethodGet, "/v1/notifications?limit=" + strings.ReplaceAll(phi[0], " ", "+"), tok, nil},
			{"PHI in a cursor", http.MethodGet, "/v1/notifications?cursor=" + phi[1], tok, nil},
			{"PHI in a path", http.MethodGet, "/v1/checkups/" + strings.Repeat(phi[1], 10), tok, nil},
			{"PHI in an event", http.MethodPost, "/v1/events/checkup-events", feed,
				map[string]any{"event_type": phi[0], "checkup_id": phi[1], "patient": map[string]any{"display_name": phi[0]}}},
		}
		for _, c := range cases {
			r := f.do(c.method, c.path, c.token, c.body)
			if r.status < 400 || r.status >= 500 {
				t.Errorf("%s: status %d, want a 4xx: %s", c.name, r.status, r.body)
				continue
			}
			for _, v := range phi {
				if bytes.Contains(r.body, []byte(v)) {
					t.Errorf("%s: the %d answer repeats %q: %s", c.name, r.status, v, r.body)
				}
			}
			if bytes.Contains(r.body, []byte(`"value"`)) {
				t.Errorf("%s: the %d answer has an errors[].value: %s", c.name, r.status, r.body)
			}
			if c.name == "PHI too long" {
				// What is wrong is still said, and where.
				if p := r.problem(t, http.StatusUnprocessableEntity); !p.hasLocation("body.data.patient_name") {
					t.Errorf("%s: %+v, want an error at body.data.patient_name", c.name, p.Errors)
				}
			}
		}
	})
}
