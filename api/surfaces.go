package api

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"

	"github.com/danielgtaylor/huma/v2"
)

// The API's three surfaces are huma groups, one per audience. An operation
// is registered on the group of its audience with a plain huma.Operation;
// the group's modifiers give it what every operation of that audience
// shares: the security requirement the security middleware enforces, the
// errors that requirement brings, and the body limit.
//
//   - doctor: the doctor portal, with the doctor's bearer token;
//   - integrator: systems that send notifications and events, read doctors
//     and deliveries and register webhooks, with an API key;
//   - operator: administration (poison, broadcasts, reports, covering
//     approvals), with an API key.
//
// An API-key operation names the scopes it needs in its Metadata with
// scopes(...); its surface turns them into the security requirement.
//
// huma runs a group's modifiers twice on the same operation: once as it
// adds the operation to the document and once as it routes it, after the
// document's OnAddOperation hooks (specHygiene, documentRateLimit,
// documentEdgeRefusals) have run. So every modifier here leaves an
// operation it already modified as it is.
type surfaces struct {
	doctor, integrator, operator *huma.Group
}

func newSurfaces(api huma.API) surfaces {
	return surfaces{
		doctor:     newSurface(api, requireDoctor),
		integrator: newSurface(api, apiKeySecurity),
		operator:   newSurface(api, apiKeySecurity),
	}
}

// commonErrors are the errors of every authenticated operation: no or a
// bad credential, a credential without the right (an inactive doctor, a key
// without the scope), and an unavailable database.
var commonErrors = []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusServiceUnavailable}

// newSurface is a group whose operations are secured by secure and share
// the common errors and the body limit.
func newSurface(api huma.API, secure func(*huma.Operation)) *huma.Group {
	g := huma.NewGroup(api)
	g.UseSimpleModifier(secure)
	g.UseSimpleModifier(func(op *huma.Operation) { op.MaxBodyBytes = MaxBodyBytes })
	g.UseSimpleModifier(documentErrors(api.OpenAPI(), commonErrors))
	return g
}

// doctorSecurity is the requirement of the doctor's token.
var doctorSecurity = []map[string][]string{{SchemeDoctor: {}}}

// requireDoctor makes the doctor's token op's security requirement.
func requireDoctor(op *huma.Operation) {
	if op.Security == nil {
		op.Security = doctorSecurity
	}
}

// metaScopes is the Metadata key of an API-key operation's scopes.
const metaScopes = "rfd.scopes"

// scopes is the Metadata of an API-key operation that needs an API key
// with every scope listed; with none listed, any key passes the middleware
// and the operation checks the key itself.
func scopes(s ...string) map[string]any {
	return map[string]any{metaScopes: s}
}

// apiKeySecurity makes an API key with the operation's scopes its security
// requirement. An operation that does not state its scopes is a
// programming error: registering it panics.
func apiKeySecurity(op *huma.Operation) {
	if op.Security != nil {
		return
	}
	s, ok := op.Metadata[metaScopes].([]string)
	if !ok {
		panic(fmt.Sprintf("api: operation %s needs an API key but states no scopes (Metadata: scopes(...))", op.OperationID))
	}
	op.Security = []map[string][]string{{SchemeAPIKey: s}}
}

// documentErrors adds common to op's errors and documents each error as
// huma documents an operation's Errors. huma.Register documents Errors
// before a group's modifiers run, so this does its part for the errors
// added here: besides op's own errors, 422 when op takes parameters or a
// body and 500, as problem details, and no catch-all "default" answer
// (huma's when an operation lists no errors).
func documentErrors(oapi *huma.OpenAPI, common []int) func(*huma.Operation) {
	return func(op *huma.Operation) {
		errs := append(slices.Clone(common), op.Errors...)
		if len(op.Parameters) > 0 || op.RequestBody != nil {
			errs = append(errs, http.StatusUnprocessableEntity)
		}
		errs = append(errs, http.StatusInternalServerError)
		op.Errors = make([]int, 0, len(errs))
		for _, code := range errs {
			if !slices.Contains(op.Errors, code) {
				op.Errors = append(op.Errors, code)
			}
		}
		if op.Responses == nil {
			op.Responses = map[string]*huma.Response{}
		}
		delete(op.Responses, "default")
		content := problemContent(oapi)
		for _, code := range op.Errors {
			key := strconv.Itoa(code)
			if op.Responses[key] == nil {
				op.Responses[key] = &huma.Response{Description: http.StatusText(code), Content: content}
			}
		}
	}
}

// problemContent is the content of an error response as huma documents
// it: huma's error model, as problem+json.
func problemContent(oapi *huma.OpenAPI) map[string]*huma.MediaType {
	model := huma.NewError(0, "")
	contentType := "application/json"
	if f, ok := model.(huma.ContentTypeFilter); ok {
		contentType = f.ContentType(contentType)
	}
	t := reflect.TypeOf(model)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return map[string]*huma.MediaType{contentType: {Schema: oapi.Components.Schemas.Schema(t, true, t.Name())}}
}
