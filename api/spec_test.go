package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/platform/health"
)

// TestSpecDescribesEveryOperation: the spec is what integrators see. Every
// operation has an id, a summary, a tag, a security requirement and its
// error responses; request bodies reject unknown fields; page sizes are
// capped; and the 3.0 downgrade renders.
func TestSpecDescribesEveryOperation(t *testing.T) {
	spec := api.New(&health.Checks{}, prometheus.NewRegistry()).OpenAPI()
	ids := map[string]bool{}
	for _, path := range sortedPaths(spec) {
		for method, op := range operationsOf(spec.Paths[path]) {
			name := method + " " + path
			if op.OperationID == "" || ids[op.OperationID] || op.Summary == "" || len(op.Tags) == 0 || op.Description == "" {
				t.Errorf("%s: id %q (duplicate %v), summary %q, tags %v, description %q", name, op.OperationID, ids[op.OperationID], op.Summary, op.Tags, op.Description)
			}
			ids[op.OperationID] = true
			if len(op.Security) == 0 {
				t.Errorf("%s has no security requirement", name)
			}
			for _, code := range []string{"401", "500"} {
				if op.Responses[code] == nil {
					t.Errorf("%s does not document %s", name, code)
				}
			}
			if strings.Contains(path, "{") && !strings.HasSuffix(path, "/stream") && op.Responses["404"] == nil && op.Responses["409"] == nil {
				t.Errorf("%s names an object but documents neither 404 nor 409", name)
			}
			for _, p := range op.Parameters {
				if p.Name == "limit" && (p.Schema.Maximum == nil || *p.Schema.Maximum > api.MaxPageSize) {
					t.Errorf("%s: limit is not capped at %d", name, api.MaxPageSize)
				}
			}
			if op.RequestBody != nil {
				s := op.RequestBody.Content["application/json"].Schema
				if s.Ref != "" {
					s = spec.Components.Schemas.SchemaFromRef(s.Ref)
				}
				if s.AdditionalProperties != false {
					t.Errorf("%s: request body accepts unknown fields", name)
				}
				if op.MaxBodyBytes != api.MaxBodyBytes {
					t.Errorf("%s: body limit %d", name, op.MaxBodyBytes)
				}
			}
		}
	}
	if len(ids) < 15 {
		t.Errorf("%d operations", len(ids))
	}
	for _, scheme := range []string{api.SchemeDoctor, api.SchemeAPIKey} {
		if spec.Components.SecuritySchemes[scheme] == nil {
			t.Errorf("security scheme %s is not described", scheme)
		}
	}
	var down map[string]any
	raw, err := spec.Downgrade()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &down); err != nil || !strings.HasPrefix(down["openapi"].(string), "3.0") {
		t.Fatalf("3.0 downgrade: %v %v", err, down["openapi"])
	}
}
