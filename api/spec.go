package api

// The checked-in spec and the client generated from it. `go generate ./...`
// rewrites api/openapi.yaml (OpenAPI 3.1, what /openapi.yaml serves) and
// api/openapi-3.0.yaml (the 3.0 downgrade, what /openapi-3.0.yaml serves),
// then regenerates api/client from the 3.0 file with the oapi-codegen
// pinned in go.mod. TestCheckedInSpec and CI fail when either is stale.
//go:generate go run ./internal/specgen
//go:generate go tool oapi-codegen -config client/oapi-codegen.yaml openapi-3.0.yaml

import (
	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/health"
)

// Spec files, relative to this package's directory.
const (
	// SpecFile is the checked-in OpenAPI 3.1 description.
	SpecFile = "openapi.yaml"
	// Spec30File is its checked-in OpenAPI 3.0 downgrade, for generators
	// that lack 3.1 (the client in api/client is generated from it).
	Spec30File = "openapi-3.0.yaml"
)

// SpecYAML renders the API description as the checked-in files hold it:
// OpenAPI 3.1 and its 3.0 downgrade, both YAML. It is the description of a
// server built by New, the same one `rfd openapi` prints and /openapi.yaml
// serves.
func SpecYAML() (v31, v30 []byte, err error) {
	spec := New(&health.Checks{}, prometheus.NewRegistry()).OpenAPI()
	if v31, err = spec.YAML(); err != nil {
		return nil, nil, err
	}
	if v30, err = spec.DowngradeYAML(); err != nil {
		return nil, nil, err
	}
	return v31, v30, nil
}

// specHygiene keeps what huma renders valid OpenAPI that linters accept:
// see patternDescriptionsAsExtensions, and a security requirement without
// scopes is an empty list, never null.
func specHygiene(oapi *huma.OpenAPI, op *huma.Operation) {
	for _, req := range op.Security {
		for scheme, scopes := range req {
			if scopes == nil {
				req[scheme] = []string{}
			}
		}
	}
	patternDescriptionsAsExtensions(oapi, op)
}

// patternDescriptionsAsExtensions moves huma's `patternDescription`
// keyword, which is not JSON Schema and fails OpenAPI linters, into the
// `x-pattern-description` extension. Validation keeps using it: its
// message was computed when the schema was built, before the operation is
// added.
func patternDescriptionsAsExtensions(oapi *huma.OpenAPI, op *huma.Operation) {
	seen := map[*huma.Schema]bool{}
	var walk func(s *huma.Schema)
	walk = func(s *huma.Schema) {
		if s == nil || seen[s] {
			return
		}
		seen[s] = true
		if s.PatternDescription != "" {
			if s.Extensions == nil {
				s.Extensions = map[string]any{}
			}
			s.Extensions["x-pattern-description"] = s.PatternDescription
			s.PatternDescription = ""
		}
		walk(s.Items)
		walk(s.Not)
		if ap, ok := s.AdditionalProperties.(*huma.Schema); ok {
			walk(ap)
		}
		for _, p := range s.Properties {
			walk(p)
		}
		for _, l := range [][]*huma.Schema{s.OneOf, s.AnyOf, s.AllOf} {
			for _, sub := range l {
				walk(sub)
			}
		}
	}
	if oapi.Components != nil && oapi.Components.Schemas != nil {
		for _, s := range oapi.Components.Schemas.Map() {
			walk(s)
		}
	}
	for _, p := range op.Parameters {
		walk(p.Schema)
	}
	if op.RequestBody != nil {
		for _, mt := range op.RequestBody.Content {
			walk(mt.Schema)
		}
	}
	for _, r := range op.Responses {
		for _, mt := range r.Content {
			walk(mt.Schema)
		}
	}
}
