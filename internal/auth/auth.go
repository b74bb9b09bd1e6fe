// Package auth authenticates the callers of the REST API.
//
// Doctors present `Authorization: Bearer <JWT>` issued by user management:
// RS256 or ES256 tokens verified against a configured PEM public key and/or
// a JWKS URL (fetched, cached, refetched on an unknown kid); HS256 only when
// a development secret is configured. The token's iss, aud and exp are
// always checked, and its sub — the doctor's external user id — is resolved
// to the doctor's row: an unknown doctor is 401, an inactive one 403.
//
// Integrators and operators present API keys (`Authorization: Bearer
// rfdk_…` or `X-API-Key: rfdk_…`). A key is shown once when it is created
// and stored only as its SHA-256 hash; it carries scopes, and a key without
// the scope an operation needs is refused with 403.
//
// Every refusal is an *Error carrying its HTTP status, so the huma
// operations and plain http.Handlers (the SSE stream) answer the same
// problem+json.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/store"
)

// Realm is the realm of the WWW-Authenticate challenges.
const Realm = "rfd-notify"

// Authenticator authenticates doctors (JWT) and API keys.
type Authenticator struct {
	db   *bun.DB
	jwt  *Verifier // nil: no key configured, every doctor token is refused
	keys *APIKeys
	// doctors looks up the doctor of a token.
	doctors store.DoctorExecutor
	now     func() time.Time
	logger  *slog.Logger
}

// Option tunes an Authenticator.
type Option func(*options)

type options struct {
	client      *http.Client
	now         func() time.Time
	minRefetch  time.Duration
	logger      *slog.Logger
	fetchTimout time.Duration
}

// WithHTTPClient sets the client that fetches the JWKS.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithClock sets the clock that checks exp, nbf and iat and key expiry.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithJWKSMinRefetch sets how soon after a fetch an unknown kid may trigger
// another fetch (default 10s): a flood of tokens with made-up kids never
// turns into a flood of requests to user management.
func WithJWKSMinRefetch(d time.Duration) Option { return func(o *options) { o.minRefetch = d } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// New builds the authenticator of cfg over db. It reads the PEM key file
// now, so a bad file stops the process at start.
func New(cfg config.Config, db *bun.DB, opts ...Option) (*Authenticator, error) {
	o := options{client: &http.Client{Timeout: 10 * time.Second}, now: time.Now, minRefetch: 10 * time.Second,
		logger: slog.New(slog.DiscardHandler), fetchTimout: 5 * time.Second}
	for _, fn := range opts {
		fn(&o)
	}
	q := store.NewQueries(db)
	a := &Authenticator{db: db, now: o.now, logger: o.logger, keys: NewAPIKeys(q, o.now), doctors: q}
	if cfg.JWTConfigured() {
		v, err := NewVerifier(VerifierConfig{
			PublicKeyFile: cfg.JWTPublicKeyFile,
			JWKSURL:       cfg.JWTJWKSURL,
			JWKSRefresh:   cfg.JWTJWKSRefresh,
			HS256Secret:   []byte(cfg.JWTHS256Secret),
			Issuer:        cfg.JWTIssuer,
			Audience:      cfg.JWTAudience,
			Leeway:        cfg.JWTLeeway,
			HTTPClient:    o.client,
			MinRefetch:    o.minRefetch,
			FetchTimeout:  o.fetchTimout,
			Now:           o.now,
		})
		if err != nil {
			return nil, err
		}
		a.jwt = v
		if cfg.JWTHS256Secret != "" {
			o.logger.Warn("RFD_JWT_HS256_SECRET is set: HS256 doctor tokens are accepted; this is for development only")
		}
	} else {
		o.logger.Warn("no doctor token key is configured (RFD_JWT_PUBLIC_KEY_FILE or RFD_JWT_JWKS_URL in production; RFD_JWT_HS256_SECRET with rfd token for development): every doctor request is refused with 401")
	}
	return a, nil
}

// APIKeys is the store of API keys (create, list, revoke).
func (a *Authenticator) APIKeys() *APIKeys { return a.keys }

// Doctor authenticates the doctor of a plain HTTP request from its
// Authorization header. The error is an *Error (see Status and WriteError).
func (a *Authenticator) Doctor(r *http.Request) (domain.Doctor, error) {
	return a.DoctorFromHeader(r.Context(), r.Header.Get("Authorization"))
}

// DoctorFromHeader authenticates the doctor presenting authorization, the
// value of an Authorization header.
func (a *Authenticator) DoctorFromHeader(ctx context.Context, authorization string) (domain.Doctor, error) {
	doc, _, err := a.DoctorTokenFromHeader(ctx, authorization)
	return doc, err
}

// DoctorTokenFromHeader is DoctorFromHeader that also returns the instant
// the token stops being accepted (its exp plus the leeway): a long-lived
// response opened with it, the notification stream, must end then.
func (a *Authenticator) DoctorTokenFromHeader(ctx context.Context, authorization string) (domain.Doctor, time.Time, error) {
	token, ok := bearer(authorization)
	if !ok {
		return domain.Doctor{}, time.Time{}, unauthorized("a bearer token is required", "")
	}
	if strings.HasPrefix(token, APIKeyPrefix) {
		return domain.Doctor{}, time.Time{}, unauthorized("an API key cannot call doctor operations; use the doctor's access token", "invalid_token")
	}
	if a.jwt == nil {
		return domain.Doctor{}, time.Time{}, unauthorized("doctor authentication is not configured on this server", "invalid_token")
	}
	claims, err := a.jwt.Verify(ctx, token)
	if err != nil {
		return domain.Doctor{}, time.Time{}, err
	}
	if a.db == nil {
		return domain.Doctor{}, time.Time{}, &Error{Status: http.StatusServiceUnavailable, Detail: "the service has no database"}
	}
	doc, err := a.doctors.DoctorGetByExternalID(ctx, claims.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return domain.Doctor{}, time.Time{}, unauthorized("the token's subject has no doctor account here", "invalid_token")
	}
	if err != nil {
		return domain.Doctor{}, time.Time{}, storeError(ctx, a.db, err)
	}
	if !doc.Active {
		return domain.Doctor{}, time.Time{}, &Error{Status: http.StatusForbidden, Detail: "the doctor's account is inactive"}
	}
	// The verifier requires exp; the check only keeps a nil from panicking.
	if claims.ExpiresAt == nil {
		return domain.Doctor{}, time.Time{}, unauthorized("the token lacks a required claim", "invalid_token")
	}
	return doc, claims.ExpiresAt.Add(a.jwt.leeway), nil
}

// APIKey authenticates the API key of a plain HTTP request.
func (a *Authenticator) APIKey(r *http.Request) (APIKey, error) {
	return a.APIKeyFromHeaders(r.Context(), r.Header.Get("Authorization"), r.Header.Get("X-API-Key"))
}

// APIKeyFromHeaders authenticates the API key in an Authorization (Bearer)
// or X-API-Key header value.
func (a *Authenticator) APIKeyFromHeaders(ctx context.Context, authorization, xAPIKey string) (APIKey, error) {
	raw := strings.TrimSpace(xAPIKey)
	if raw == "" {
		token, ok := bearer(authorization)
		if !ok {
			return APIKey{}, unauthorized("an API key is required (X-API-Key or Authorization: Bearer rfdk_…)", "")
		}
		raw = token
	}
	if !strings.HasPrefix(raw, APIKeyPrefix) {
		return APIKey{}, unauthorized("this operation takes an API key, not a doctor's token", "invalid_token")
	}
	if a.db == nil {
		return APIKey{}, &Error{Status: http.StatusServiceUnavailable, Detail: "the service has no database"}
	}
	k, err := a.keys.Verify(ctx, raw)
	if err != nil {
		var ae *Error
		if errors.As(err, &ae) {
			return APIKey{}, ae
		}
		return APIKey{}, storeError(ctx, a.db, err)
	}
	return k, nil
}

// Authorize checks that key carries every scope in scopes: 403 otherwise.
func Authorize(key APIKey, scopes ...string) error {
	for _, s := range scopes {
		if !key.HasScope(s) {
			return &Error{Status: http.StatusForbidden, Detail: fmt.Sprintf("the API key lacks the scope %q", s)}
		}
	}
	return nil
}

func bearer(authorization string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// Error is a refused authentication or authorisation: 401, 403, or 503 when
// what decides (the database, the JWKS endpoint) cannot be reached.
type Error struct {
	Status int
	// Detail is safe to show the caller.
	Detail string
	// Code is the RFC 6750 error code of a 401's challenge
	// ("invalid_token"), empty when no credentials were presented.
	Code  string
	cause error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return e.Detail + ": " + e.cause.Error()
	}
	return e.Detail
}

// Unwrap returns the underlying cause, never shown to callers.
func (e *Error) Unwrap() error { return e.cause }

// Challenge is the WWW-Authenticate header value of a 401, "" otherwise.
func (e *Error) Challenge() string {
	if e.Status != http.StatusUnauthorized {
		return ""
	}
	if e.Code == "" {
		return `Bearer realm="` + Realm + `"`
	}
	return `Bearer realm="` + Realm + `", error="` + e.Code + `", error_description="` + strings.ReplaceAll(e.Detail, `"`, `'`) + `"`
}

func unauthorized(detail, code string) *Error {
	return &Error{Status: http.StatusUnauthorized, Detail: detail, Code: code}
}

// Status is the HTTP status of an authentication error: the *Error's, or
// 500 for anything else.
func Status(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}

// WriteError answers a plain HTTP request with err as RFC 9457
// problem+json (the shape huma uses), with its WWW-Authenticate challenge on
// a 401 and Retry-After on a 503.
func WriteError(w http.ResponseWriter, err error) {
	status := Status(err)
	detail := "authentication failed"
	var e *Error
	if errors.As(err, &e) {
		detail = e.Detail
		if c := e.Challenge(); c != "" {
			w.Header().Set("WWW-Authenticate", c)
		}
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"title":  http.StatusText(status),
		"status": status,
		"detail": detail,
	})
}

type ctxKey int

const (
	doctorKey ctxKey = iota
	apiKeyKey
	tokenExpiryKey
)

// WithDoctor returns ctx carrying the authenticated doctor.
func WithDoctor(ctx context.Context, d domain.Doctor) context.Context {
	return context.WithValue(ctx, doctorKey, d)
}

// DoctorFromContext returns the doctor authenticated for this request.
func DoctorFromContext(ctx context.Context) (domain.Doctor, bool) {
	d, ok := ctx.Value(doctorKey).(domain.Doctor)
	return d, ok
}

// WithTokenExpiry returns ctx carrying the instant the doctor's token stops
// being accepted.
func WithTokenExpiry(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, tokenExpiryKey, t)
}

// TokenExpiryFromContext returns the instant the token that authenticated
// this request's doctor stops being accepted.
func TokenExpiryFromContext(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(tokenExpiryKey).(time.Time)
	return t, ok
}

// WithAPIKey returns ctx carrying the authenticated API key.
func WithAPIKey(ctx context.Context, k APIKey) context.Context {
	return context.WithValue(ctx, apiKeyKey, k)
}

// APIKeyFromContext returns the API key authenticated for this request.
func APIKeyFromContext(ctx context.Context) (APIKey, bool) {
	k, ok := ctx.Value(apiKeyKey).(APIKey)
	return k, ok
}
