package api

// The checked-in spec and the client generated from it. `go generate ./...`
// rewrites api/openapi.yaml (OpenAPI 3.1, what /openapi.yaml serves) and
// api/openapi-3.0.yaml (the 3.0 downgrade, what /openapi-3.0.yaml serves),
// then regenerates api/client from the 3.0 file with the oapi-codegen
// pinned in go.mod. TestCheckedInSpec and CI fail when either is stale.
//go:generate go run ./internal/specgen
//go:generate go tool oapi-codegen -config client/oapi-codegen.yaml openapi-3.0.yaml

import (
	"encoding/json"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/internal/platform/health"
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

// specHygiene keeps what huma renders valid OpenAPI that linters,
// validators and generators accept, in the 3.1 document and in its 3.0
// downgrade alike (huma's Downgrade converts types and examples, not
// these): a security requirement without scopes is an empty list, never
// null; see patternDescriptionAsExtension, constAsEnum and refWithSiblings.
// It runs on every operation as huma adds it (Config's OnAddOperation),
// over the operation's schemas and every shared schema, so operations
// added later are covered too.
func specHygiene(oapi *huma.OpenAPI, op *huma.Operation) {
	for _, req := range op.Security {
		for scheme, scopes := range req {
			if scopes == nil {
				req[scheme] = []string{}
			}
		}
	}
	walkSchemas(oapi, op, func(s *huma.Schema) {
		patternDescriptionAsExtension(s)
		constAsEnum(s)
		refWithSiblings(s)
	})
}

// patternDescriptionAsExtension moves huma's `patternDescription` keyword,
// which is not JSON Schema and fails OpenAPI linters, into the
// `x-pattern-description` extension. Validation keeps using it: its
// message was computed when the schema was built, before the operation is
// added.
func patternDescriptionAsExtension(s *huma.Schema) {
	if s.PatternDescription == "" {
		return
	}
	if s.Extensions == nil {
		s.Extensions = map[string]any{}
	}
	s.Extensions["x-pattern-description"] = s.PatternDescription
	s.PatternDescription = ""
}

// constAsEnum writes `const: v` as `enum: [v]`: the same constraint, but
// `const` does not exist in OpenAPI 3.0, so the downgrade would be invalid.
// huma's SSE operations put their event names' const in the extensions.
func constAsEnum(s *huma.Schema) {
	if v, ok := s.Extensions["const"]; ok {
		delete(s.Extensions, "const")
		if s.Const == nil {
			s.Const = v
		}
	}
	if s.Const == nil {
		return
	}
	s.Enum = []any{s.Const}
	s.Const = nil
	s.PrecomputeMessages()
}

// refWithSiblings wraps a `$ref` that has sibling keywords (huma puts a
// field's doc beside the $ref of its struct type) in `allOf`: OpenAPI 3.0
// ignores a $ref's siblings, and validators and linters reject them. The
// description stays, and validation is unchanged (huma validates each
// allOf member).
func refWithSiblings(s *huma.Schema) {
	if s.Ref == "" {
		return
	}
	bare := *s
	bare.Ref = ""
	if b, err := json.Marshal(&bare); err == nil && string(b) == "{}" {
		return
	}
	s.AllOf = append([]*huma.Schema{{Ref: s.Ref}}, s.AllOf...)
	s.Ref = ""
}

// walkSchemas calls fn on every schema reachable from the shared
// components and from op's parameters, request body and responses, once
// each.
func walkSchemas(oapi *huma.OpenAPI, op *huma.Operation, fn func(*huma.Schema)) {
	seen := map[*huma.Schema]bool{}
	var walk func(s *huma.Schema)
	walk = func(s *huma.Schema) {
		if s == nil || seen[s] {
			return
		}
		seen[s] = true
		fn(s)
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
		// huma's SSE operations describe their events in extensions.
		for _, x := range s.Extensions {
			switch x := x.(type) {
			case *huma.Schema:
				walk(x)
			case []*huma.Schema:
				for _, sub := range x {
					walk(sub)
				}
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
		if r == nil {
			continue
		}
		for _, mt := range r.Content {
			walk(mt.Schema)
		}
		for _, h := range r.Headers {
			if h != nil {
				walk(h.Schema)
			}
		}
	}
}
