package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestReadiness(t *testing.T) {
	checks := &Checks{}
	dbUp := true
	checks.Add("database", func(context.Context) error {
		if !dbUp {
			return errors.New("connection refused")
		}
		return nil
	})
	checks.Add("transport", func(context.Context) error { return nil })
	mux := http.NewServeMux()
	Register(mux, checks, prometheus.NewRegistry())

	get := func(path string) (int, map[string]any) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var body map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body
	}

	if code, body := get("/readyz"); code != http.StatusOK || body["status"] != "ready" {
		t.Fatalf("readyz with everything up = %d %v", code, body)
	}
	dbUp = false
	code, body := get("/readyz")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the database down = %d, want 503", code)
	}
	reasons, _ := body["reasons"].(map[string]any)
	if reasons["database"] != "connection refused" || reasons["transport"] != nil {
		t.Fatalf("reasons = %v, want only database", reasons)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("healthz = %d: liveness must not depend on the database", code)
	}
	if code, _ := get("/metrics"); code != http.StatusOK {
		t.Fatalf("metrics = %d", code)
	}
}
