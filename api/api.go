// Package api is the REST API of the doctor portal, integrators and
// operators: huma operations grouped by resource, one file each, served with
// their OpenAPI 3.1 description. Health and metrics endpoints sit beside it
// on the same mux, outside the spec.
//
// Every operation is registered on the huma group of its audience
// (surfaces.go: doctor, integrator, operator), whose modifiers declare its
// security requirement in the spec and the errors it brings, and one
// middleware enforces it: doctor operations (security doctorJWT)
// authenticate the doctor's token and run with the doctor in the context
// (auth.DoctorFromContext); integrator and operator operations (security
// apiKey, with scopes) authenticate an API key and check its scopes. A doctor only ever reaches their own objects:
// every query is scoped to the authenticated doctor, so another doctor's id
// is 404. Reads of patient data are written to the audit log.
package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/api/docsui"
	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/delivery/channels/webhook"
	"github.com/rfd-notify/rfd/internal/delivery/inapp"
	"github.com/rfd-notify/rfd/internal/jobs/poison"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/health"
	"github.com/rfd-notify/rfd/outbox"
)

// Version is the API version in the OpenAPI document.
const Version = "1.0.0"

// Security scheme names of the OpenAPI document.
const (
	// SchemeDoctor is the doctors' bearer JWT.
	SchemeDoctor = "doctorJWT"
	// SchemeAPIKey is the integrators' and operators' API key; its scopes
	// are listed on each operation.
	SchemeAPIKey = "apiKey"
)

// Limits every operation shares.
const (
	// MaxBodyBytes bounds request bodies; a larger one is 413.
	MaxBodyBytes = 16 << 10
	// MaxPageSize caps page sizes; a larger limit is 422.
	MaxPageSize = 100
	// dbTimeout bounds the database work of one request: a database that
	// hangs answers 503 instead of holding the request.
	dbTimeout = 10 * time.Second
)

// Server is the HTTP surface of the api role.
type Server struct {
	mux     *http.ServeMux
	handler http.Handler
	api     huma.API
	auth    *auth.Authenticator
	h       *service
	limits  rateLimits
	streams *StreamGate
}

// Deps are what the operations are built from.
type Deps struct {
	// Config's APIRatePerKey and APIRatePerDoctor limit the requests of each
	// API key and each doctor; zero is unlimited.
	Config config.Config
	DB     *bun.DB
	// Auth authenticates callers (required by NewServer).
	Auth *auth.Authenticator
	// Outbox publishes the integrators' events and notifications in the
	// request's transaction, on the configured transport (required by
	// NewServer).
	Outbox *outbox.Publisher
	// Notifier makes the notifications integrators send (required by
	// NewServer); it publishes through Outbox.
	Notifier *notify.Notifier
	// Poison is the operators' poison service (required by NewServer).
	Poison *poison.Service
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// InApp is this replica's hub of in-app events, fed by its consumer of
	// the in-app broadcast topic; it pushes new notifications to the
	// doctors' open streams. Without one the stream replays from the
	// database and sends heartbeats, but pushes nothing live.
	InApp *inapp.Hub
	// Metrics receives the response-time histogram; nil measures nothing.
	Metrics prometheus.Registerer
	// Resolver looks up webhook hosts at registration, to refuse those
	// that resolve to non-public addresses; nil is net.DefaultResolver.
	Resolver webhook.Resolver
}

// Config returns the huma configuration shared by the server and `rfd openapi`.
func Config() huma.Config {
	cfg := huma.DefaultConfig("RFD Notify API", Version)
	cfg.Info.Description = "Notifications about referred patients' checkups, results and orders for referring doctors, their portal and integrators.\n\n" +
		"Errors are RFC 9457 problem details (`application/problem+json`); validation errors list each failing field with its location " +
		"(`body.quiet_hours.start`, `query.limit`) and never repeat the submitted value. Request bodies are limited to 16 KiB and reject unknown fields; page sizes are capped at 100. " +
		"Text no database can store (a NUL character, raw or as `\\u0000`, or invalid UTF-8) in any parameter or body field, and a JSON body that gives a property twice, are 422 naming the field, never quoting it. " +
		"Every response carries `X-Content-Type-Options: nosniff`; a path nothing serves is 404, a method a path does not take 405 (with `Allow`), and request headers over 64 KiB 431, all problem+json. " +
		"When the database is unavailable an operation answers 503 with `Retry-After`. " +
		"Requests are rate limited per API key and per doctor (token buckets); a caller over its limit gets 429 with `Retry-After` in seconds."
	cfg.Info.License = &huma.License{Name: "Proprietary"}
	cfg.Servers = []*huma.Server{{URL: "http://localhost:8080", Description: "`rfd serve` on this machine; a deployment serves the same paths at its own host."}}
	cfg.OnAddOperation = append(cfg.OnAddOperation, specHygiene, documentRateLimit, documentEdgeRefusals)
	cfg.Transformers = append(cfg.Transformers, withholdValues)
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		SchemeDoctor: {
			Type:         "http",
			Scheme:       "bearer",
			BearerFormat: "JWT",
			Description: "A doctor's access token from user management (RS256 or ES256). `iss`, `aud` and `exp` are checked; " +
				"`sub` is the doctor's external user id. A missing, expired, tampered or foreign token is 401; an inactive doctor is 403.",
		},
		SchemeAPIKey: {
			Type: "apiKey",
			In:   "header",
			Name: "X-API-Key",
			Description: "An integrator's or operator's API key (`rfdk_…`), also accepted as `Authorization: Bearer rfdk_…`. " +
				"Each operation lists the scopes it needs; a key without them is 403. Keys are made with `rfd apikey create --scopes …`.\n\n" +
				scopeTable(),
		},
	}
	cfg.Tags = []*huma.Tag{
		{Name: "Me", Description: "The authenticated doctor: profile, notification preferences and push devices."},
		{Name: "Notifications", Description: "The doctor's notifications: list, detail, read and acknowledge."},
		{Name: "Dashboard", Description: "The doctor's portal summary."},
		{Name: "Orders", Description: "Orders of the doctor's referred patients, with their timelines."},
		{Name: "Checkups", Description: "Checkups of the doctor's referred patients, with every result version."},
		{Name: "Doctors", Description: "Referring doctors, for integrators."},
	}
	return cfg
}

// scopeTable describes the API keys' scopes, as a Markdown table.
func scopeTable() string {
	var b strings.Builder
	b.WriteString("| scope | grants |\n|---|---|\n")
	for _, s := range auth.ScopeCatalog {
		fmt.Fprintf(&b, "| `%s` | %s |\n", s.Name, s.Description)
	}
	b.WriteString("\nThe retired scope `events:write`, on keys issued before ingestion was scoped per event type, " +
		"still grants `events:checkup` and `events:order-history`, and nothing else; no new key gets it.")
	return b.String()
}

// Route is a plain HTTP endpoint served beside the operations, outside the
// OpenAPI description: provider callbacks, authenticated by the provider's
// own signature scheme.
type Route struct {
	Pattern string
	Handler http.Handler
}

// New builds the API without a database: every operation is described (this
// is what `rfd openapi` prints, with Config's servers) and answers 503. The
// service uses NewServer.
func New(checks *health.Checks, gatherer prometheus.Gatherer, routes ...Route) *Server {
	s, err := build(Deps{}, nil, "", checks, gatherer, routes...)
	if err != nil {
		panic(err) // built from Config alone, which is fixed
	}
	return s
}

// NewServer builds the API with its operations over d, health checks,
// /metrics of gatherer (none when gatherer is nil: the api role serves its
// metrics on the admin listener only), and routes. The API builds none of
// its services: d brings the database, the authenticator, the outbox, the
// notifier and the poison service, which the roles build (package roles).
func NewServer(d Deps, checks *health.Checks, gatherer prometheus.Gatherer, routes ...Route) (*Server, error) {
	for _, missing := range []struct {
		name string
		nil  bool
	}{
		{"database", d.DB == nil},
		{"authenticator", d.Auth == nil},
		{"outbox", d.Outbox == nil},
		{"notifier", d.Notifier == nil},
		{"poison service", d.Poison == nil},
	} {
		if missing.nil {
			return nil, fmt.Errorf("api: no %s", missing.name)
		}
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.InApp == nil {
		d.Logger.Warn("api: no in-app hub: the notification stream replays from the database but pushes nothing live")
	}
	s, err := build(d, d.Auth, d.Config.PublicBaseURL(), checks, gatherer, routes...)
	if err != nil {
		return nil, err
	}
	in := newInstrumentation(s.api.OpenAPI())
	if d.Metrics != nil {
		if err := in.measure(d.Metrics); err != nil {
			return nil, fmt.Errorf("api metrics: %w", err)
		}
	}
	s.handler = in.wrap(s.edge(s.mux))
	return s, nil
}

// build builds the server. publicURL, when set, is the spec's one server:
// the running server's address, which the docs page's "Try it" calls; the
// checked-in spec keeps Config's.
func build(d Deps, authn *auth.Authenticator, publicURL string, checks *health.Checks, gatherer prometheus.Gatherer, routes ...Route) (*Server, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	mux := http.NewServeMux()
	health.Register(mux, checks, gatherer)
	for _, r := range routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	cfg := Config()
	if publicURL != "" {
		cfg.Servers = []*huma.Server{{URL: publicURL, Description: "This server (RFD_PUBLIC_URL, or else its listen address)."}}
	}
	// huma's docs page loads its script from a CDN; docsui serves the
	// same renderer from the binary.
	cfg.DocsPath = ""
	if err := docsui.Register(mux, docsPage(cfg)); err != nil {
		return nil, err
	}
	cfg.CreateHooks = append(cfg.CreateHooks, trustedSchemaLinks(d.Config.PublicBaseURL()))
	a := humago.New(mux, cfg)
	h := &service{db: d.DB, now: d.Now, logger: d.Logger, coveringMax: coveringMax(d.Config)}
	if d.DB != nil {
		h.auditLog = newAuditLog(d.DB, dbTimeout)
	}
	s := &Server{mux: mux, api: a, auth: authn, h: h,
		limits: newRateLimits(d.Config.APIRatePerKey, d.Config.APIRatePerDoctor)}
	a.UseMiddleware(s.security(a), refuseUnstorableText(a))
	// The order of registration is the order of the tags in the spec.
	g := newSurfaces(a)
	registerMe(g.doctor, s.h)
	registerDevices(g.doctor, s.h)
	registerNotifications(g.doctor, s.h)
	registerDashboard(g.doctor, s.h)
	registerOrders(g.doctor, s.h)
	registerCheckups(g.doctor, s.h)
	registerDoctors(g.integrator, s.h)
	registerIntegrations(g.integrator, s.h, d)
	registerPoison(g.operator, s.h, d)
	registerBroadcasts(g.operator, s.h)
	registerReports(g.operator, s.h, d.Config.EscalationSLA)
	registerCovering(g.doctor, g.operator, s.h)
	hub := d.InApp
	if hub == nil {
		hub = inapp.NewHub()
	}
	s.streams = NewStreamGate(d.Config.StreamsPerDoctor, d.Config.StreamsMax)
	RegisterStream(a, StreamDeps{DB: d.DB, Hub: hub, Doctor: auth.DoctorFromContext, Security: doctorSecurity,
		Expires: auth.TokenExpiryFromContext, Gate: s.streams})
	s.handler = s.edge(s.mux)
	return s, nil
}

// docsPage is the docs page of the API cfg describes: it renders the spec
// at cfg.OpenAPIPath, relative to the page (/docs), so that a proxy may
// mount the API under a prefix, and lets "Try it" call the spec's servers.
func docsPage(cfg huma.Config) docsui.Page {
	p := docsui.Page{Title: cfg.Info.Title + " Reference", SpecURL: strings.TrimPrefix(cfg.OpenAPIPath, "/") + ".yaml"}
	for _, srv := range cfg.Servers {
		p.TryItOrigins = append(p.TryItOrigins, srv.URL)
	}
	return p
}

// EndStreams ends every open notification stream and refuses new ones.
// Register it with http.Server.RegisterOnShutdown: a shutdown waits for
// open requests, and a stream never ends by itself.
func (s *Server) EndStreams() { s.streams.Close() }

// Streams is the gate of the notification streams (caps, open count).
func (s *Server) Streams() *StreamGate { return s.streams }

// Handler serves every endpoint.
func (s *Server) Handler() http.Handler { return s.handler }

// OpenAPI is the API description.
func (s *Server) OpenAPI() *huma.OpenAPI { return s.api.OpenAPI() }

// API is the huma API, to register more operations on.
func (s *Server) API() huma.API { return s.api }

// Auth is the authenticator of the server's operations; nil on a server
// built by New (no database). Plain handlers authenticate doctors with
// Auth().Doctor(r) and answer refusals with auth.WriteError.
func (s *Server) Auth() *auth.Authenticator { return s.auth }

// Handle serves a plain HTTP handler on the server's mux, outside the spec.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }
