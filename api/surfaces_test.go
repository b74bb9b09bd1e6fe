package api

import (
	"context"
	"net/http"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
)

type surfaceInput struct {
	ID string `path:"id"`
}

type surfaceOutput struct{}

func surfaceHandler(context.Context, *surfaceInput) (*surfaceOutput, error) {
	return &surfaceOutput{}, nil
}

func noInputHandler(context.Context, *struct{}) (*surfaceOutput, error) { return &surfaceOutput{}, nil }

// TestSurfaces: an operation registered on a surface gets, from the
// group's modifiers, its security requirement, the body limit and the
// common errors as huma documents an operation's Errors (422 only when it
// takes input, 500, no "default"); the document keeps them after huma
// routes the operation, which runs the modifiers again.
func TestSurfaces(t *testing.T) {
	a := humago.New(http.NewServeMux(), Config())
	g := newSurfaces(a)
	huma.Register(g.doctor, huma.Operation{OperationID: "d", Method: http.MethodGet, Path: "/d", Summary: "d", Tags: []string{"Me"}}, noInputHandler)
	huma.Register(g.operator, huma.Operation{OperationID: "o", Method: http.MethodGet, Path: "/o/{id}", Summary: "o", Tags: []string{"Poison"},
		Metadata: scopes("poison:read"), Errors: []int{http.StatusNotFound}}, surfaceHandler)
	huma.Register(g.integrator, huma.Operation{OperationID: "i", Method: http.MethodGet, Path: "/i/{id}", Summary: "i", Tags: []string{"Doctors"},
		Metadata: scopes()}, surfaceHandler)

	cases := []struct {
		path, scheme string
		scopes       []string
		errs         []string
		not          []string
	}{
		{"/d", SchemeDoctor, []string{}, []string{"401", "403", "429", "500", "503"}, []string{"default"}},
		{"/o/{id}", SchemeAPIKey, []string{"poison:read"}, []string{"401", "403", "404", "422", "429", "500", "503"}, []string{"default"}},
		{"/i/{id}", SchemeAPIKey, []string{}, []string{"401", "403", "422", "429", "500", "503"}, []string{"default", "404"}},
	}
	for _, c := range cases {
		op := a.OpenAPI().Paths[c.path].Get
		if len(op.Security) != 1 || op.Security[0][c.scheme] == nil || len(op.Security[0][c.scheme]) != len(c.scopes) {
			t.Errorf("%s: security %v, want %s with scopes %v", c.path, op.Security, c.scheme, c.scopes)
		}
		for i, s := range c.scopes {
			if op.Security[0][c.scheme][i] != s {
				t.Errorf("%s: scopes %v, want %v", c.path, op.Security[0][c.scheme], c.scopes)
			}
		}
		if op.MaxBodyBytes != MaxBodyBytes {
			t.Errorf("%s: body limit %d", c.path, op.MaxBodyBytes)
		}
		for _, code := range c.errs {
			r := op.Responses[code]
			if r == nil || r.Content[problemContentType] == nil {
				t.Errorf("%s: %s not documented as problem details: %+v", c.path, code, r)
			}
		}
		for _, code := range c.not {
			if op.Responses[code] != nil {
				t.Errorf("%s: documents %s", c.path, code)
			}
		}
	}
	if d := a.OpenAPI().Paths["/d"].Get.Responses["422"].Description; d == http.StatusText(http.StatusUnprocessableEntity) {
		t.Errorf("an operation without input documents huma's 422, want the edge's")
	}
}

// TestSurfaceNeedsScopes: an API-key operation that names no scopes is a
// programming error, refused at registration.
func TestSurfaceNeedsScopes(t *testing.T) {
	g := newSurfaces(humago.New(http.NewServeMux(), Config()))
	defer func() {
		if recover() == nil {
			t.Error("an API-key operation without scopes was registered")
		}
	}()
	huma.Register(g.operator, huma.Operation{OperationID: "x", Method: http.MethodGet, Path: "/x", Summary: "x"}, noInputHandler)
}
