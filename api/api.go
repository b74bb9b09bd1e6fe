// Package api is the REST API of the doctor portal, integrators and
// operators: huma operations grouped by resource, served with their OpenAPI
// 3.1 description. Health and metrics endpoints sit beside it on the same
// mux, outside the spec.
package api

import (
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/health"
)

// Version is the API version in the OpenAPI document.
const Version = "1.0.0"

// Server is the HTTP surface of the api role.
type Server struct {
	mux *http.ServeMux
	api huma.API
}

// Config returns the huma configuration shared by the server and `rfd openapi`.
func Config() huma.Config {
	cfg := huma.DefaultConfig("RFD Notify API", Version)
	cfg.Info.Description = "Notifications about referred patients' checkups, results and orders for referring doctors, their portal and integrators."
	return cfg
}

// Route is a plain HTTP endpoint served beside the operations, outside the
// OpenAPI description: provider callbacks, authenticated by the provider's
// own signature scheme.
type Route struct {
	Pattern string
	Handler http.Handler
}

// New builds the API with its operations, health checks and metrics.
func New(checks *health.Checks, gatherer prometheus.Gatherer, routes ...Route) *Server {
	mux := http.NewServeMux()
	health.Register(mux, checks, gatherer)
	for _, r := range routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	a := humago.New(mux, Config())
	return &Server{mux: mux, api: a}
}

// Handler serves every endpoint.
func (s *Server) Handler() http.Handler { return s.mux }

// OpenAPI is the API description.
func (s *Server) OpenAPI() *huma.OpenAPI { return s.api.OpenAPI() }
