package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/oapi-codegen/oapi-codegen/v2/pkg/codegen"
	"github.com/oapi-codegen/oapi-codegen/v2/pkg/util"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/platform/health"
)

// TestSpec30ValidatesWithKinOpenAPI: the checked-in 3.0 downgrade is valid
// OpenAPI 3.0 to kin-openapi, the loader most Go generators use: no $ref
// with sibling keywords, no 3.1-only keyword such as const.
func TestSpec30ValidatesWithKinOpenAPI(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(api.Spec30File)
	if err != nil {
		t.Fatalf("load %s: %v", api.Spec30File, err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Fatalf("%s is OpenAPI %s", api.Spec30File, doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("%s: %v", api.Spec30File, err)
	}
}

// TestSpecGeneratesWithStockOapiCodegen: oapi-codegen, as go.mod pins it
// and with no overlay or x-go-* name, generates a client from each
// checked-in document (it refuses two types of one name, such as an inline
// enum Delivery.status and a schema DeliveryStatus). Every ingest
// operation's body is its contract's concrete type, not a struct of
// untyped fields. scripts/check-clients also compiles the output.
func TestSpecGeneratesWithStockOapiCodegen(t *testing.T) {
	for _, file := range []string{api.SpecFile, api.Spec30File} {
		t.Run(file, func(t *testing.T) {
			doc, err := util.LoadSwagger(file)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			cfg := codegen.Configuration{
				PackageName: "client",
				Generate:    codegen.GenerateOptions{Models: true, Client: true},
			}.UpdateDefaults()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			code, err := codegen.Generate(doc, cfg)
			if err != nil {
				// A duplicate type name: oapi-codegen names an inline enum
				// after its schema and property (Delivery.status is
				// DeliveryStatus); rename the Go type of the other schema.
				t.Fatalf("oapi-codegen: %v", err)
			}
			for _, body := range []string{
				"type IngestCheckupEventJSONRequestBody = InboundCheckupEvent",
				"type IngestOrderHistoryEventJSONRequestBody = InboundOrderHistoryEvent",
				"type IngestUserCreatedJSONRequestBody = InboundUserCreated",
				"type IngestInternalLoginJSONRequestBody = InboundInternalLogin",
			} {
				if !strings.Contains(code, body) {
					t.Errorf("generated client lacks %q", body)
				}
			}
			if i := strings.Index(code, "type InboundCheckupEvent struct"); i < 0 ||
				!strings.Contains(code[i:i+strings.Index(code[i:], "\n}")], "Patient ") {
				t.Errorf("InboundCheckupEvent is not a struct with the contract's fields")
			}
		})
	}
}

type laterPart struct {
	Start string `json:"start" pattern:"^[0-2][0-9]:[0-5][0-9]$" patternDescription:"HH:MM"`
}

type laterBody struct {
	Part laterPart `json:"part" doc:"A struct-typed field with a doc: huma puts the doc beside the $ref."`
	Kind string    `json:"kind" const:"later"`
}

// TestSpecHygieneCoversLaterOperations: the spec fixes are made as each
// operation is added (Config's OnAddOperation), so an operation registered
// after the others, with a documented struct field and a const, still
// downgrades to valid OpenAPI 3.0, keeps the field's doc, and its body is
// validated as before (the wrapped $ref's constraints apply, with the
// field path).
func TestSpecHygieneCoversLaterOperations(t *testing.T) {
	srv := api.New(&health.Checks{}, prometheus.NewRegistry())
	huma.Register(srv.API(), huma.Operation{OperationID: "laterOp", Method: http.MethodPost, Path: "/v1/later", Summary: "later"},
		func(context.Context, *struct{ Body laterBody }) (*struct{}, error) { return nil, nil })

	down, err := srv.OpenAPI().Downgrade()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(down)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("3.0 downgrade with a later operation: %v", err)
	}
	part := doc.Components.Schemas["LaterBody"].Value.Properties["part"].Value
	if !strings.Contains(part.Description, "huma puts the doc") || len(part.AllOf) != 1 || part.AllOf[0].Ref != "#/components/schemas/LaterPart" {
		t.Errorf("part = %+v", part)
	}
	if kind := doc.Components.Schemas["LaterBody"].Value.Properties["kind"].Value; len(kind.Enum) != 1 || kind.Enum[0] != "later" {
		t.Errorf("kind enum = %v", kind.Enum)
	}

	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	for body, want := range map[string]string{
		`{"part":{"start":"07:00"},"kind":"later"}`:           "",
		`{"part":{"start":"7 am"},"kind":"later"}`:            "body.part.start",
		`{"part":{"start":"07:00","extra":1},"kind":"later"}`: "body.part.extra",
		`{"part":{"start":"07:00"},"kind":"sooner"}`:          "body.kind",
	} {
		resp, err := http.Post(ts.URL+"/v1/later", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case want == "" && resp.StatusCode != http.StatusNoContent:
			t.Errorf("%s: %d %s", body, resp.StatusCode, b)
		case want != "" && (resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), `"location":"`+want+`"`)):
			t.Errorf("%s: %d %s, want 422 at %s", body, resp.StatusCode, b, want)
		}
	}
}
