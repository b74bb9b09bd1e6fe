package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/domain"
)

// service holds what the operations share; its methods are the operations.
type service struct {
	db       *bun.DB
	now      func() time.Time
	logger   *slog.Logger
	auditLog *auditLog
	// coveringMax is the longest cover a doctor may request.
	coveringMax time.Duration
}

// caller is who is calling and from where, for the audit log.
type caller struct {
	actorType string // "doctor" or "api_key"
	actorID   string
	ip        string
	userAgent string
}

type callerKey struct{}

func callerOf(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// security enforces each operation's security requirement: the doctor's
// token or an API key with the listed scopes, then the rate limit of that
// doctor or key (429 with Retry-After). Operations without a requirement
// pass through. Responses of the API are never cached.
func (s *Server) security(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		op := ctx.Operation()
		if op == nil || len(op.Security) == 0 {
			next(ctx)
			return
		}
		ctx.SetHeader("Cache-Control", "no-store")
		if s.auth == nil || s.h.db == nil {
			writeProblem(api, ctx, &auth.Error{Status: http.StatusServiceUnavailable, Detail: "the API is not connected to a database"})
			return
		}
		c := caller{ip: clientIP(ctx.RemoteAddr()), userAgent: truncate(ctx.Header("User-Agent"), 256)}
		for _, req := range op.Security {
			if _, ok := req[SchemeDoctor]; ok {
				doc, expires, err := s.auth.DoctorTokenFromHeader(ctx.Context(), ctx.Header("Authorization"))
				if err != nil {
					s.logRefusal(ctx, err)
					writeProblem(api, ctx, err)
					return
				}
				if !s.allow(api, ctx, s.limits.perDoctor, doc.ID, "doctor", s.limits.docRate) {
					return
				}
				c.actorType, c.actorID = "doctor", doc.ID
				rc := context.WithValue(auth.WithDoctor(ctx.Context(), doc), callerKey{}, c)
				rc = auth.WithTokenExpiry(rc, expires)
				next(huma.WithContext(ctx, rc))
				return
			}
			if scopes, ok := req[SchemeAPIKey]; ok {
				key, err := s.auth.APIKeyFromHeaders(ctx.Context(), ctx.Header("Authorization"), ctx.Header("X-API-Key"))
				if err == nil {
					err = auth.Authorize(key, scopes...)
				}
				if err != nil {
					s.logRefusal(ctx, err)
					writeProblem(api, ctx, err)
					return
				}
				if !s.allow(api, ctx, s.limits.perKey, key.ID, "API key", s.limits.keyRate) {
					return
				}
				c.actorType, c.actorID = "api_key", key.ID
				rc := context.WithValue(auth.WithAPIKey(ctx.Context(), key), callerKey{}, c)
				next(huma.WithContext(ctx, rc))
				return
			}
		}
		writeProblem(api, ctx, &auth.Error{Status: http.StatusUnauthorized, Detail: "this operation's security scheme is not supported"})
	}
}

func (s *Server) logRefusal(ctx huma.Context, err error) {
	level := slog.LevelDebug
	if auth.Status(err) >= 500 {
		level = slog.LevelWarn
	}
	s.h.logger.Log(ctx.Context(), level, "api: request refused", "operation", ctx.Operation().OperationID,
		"status", auth.Status(err), "error", err.Error())
}

// writeProblem answers an authentication error as problem+json, with the
// WWW-Authenticate challenge of a 401 and Retry-After of a 503.
func writeProblem(api huma.API, ctx huma.Context, err error) {
	status := auth.Status(err)
	detail := "authentication failed"
	var ae *auth.Error
	if errors.As(err, &ae) {
		detail = ae.Detail
		if ch := ae.Challenge(); ch != "" {
			ctx.SetHeader("WWW-Authenticate", ch)
		}
	}
	if status == http.StatusServiceUnavailable {
		ctx.SetHeader("Retry-After", retryAfter)
	}
	_ = huma.WriteErr(api, ctx, status, detail)
}

// retryAfter is what a 503 asks clients to wait, in seconds.
const retryAfter = "5"

func clientIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// doctorOf is the authenticated doctor; the security middleware guarantees
// one on every doctor operation.
func doctorOf(ctx context.Context) (domain.Doctor, error) {
	d, ok := auth.DoctorFromContext(ctx)
	if !ok {
		return domain.Doctor{}, huma.Error401Unauthorized("a doctor's token is required")
	}
	return d, nil
}

// dbctx bounds the database work of a request.
func (h *service) dbctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, dbTimeout)
}

// fail turns an error met while serving into the client's answer: huma
// errors as they are, an unavailable database as 503 with Retry-After, and
// anything else as a 500 whose cause is logged, never shown.
func (h *service) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var se huma.StatusError
	if errors.As(err, &se) {
		return err
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The client went away; nobody reads this answer.
		return huma.Error503ServiceUnavailable("request cancelled")
	}
	if auth.Unavailable(ctx, h.db, err) {
		h.logger.WarnContext(ctx, "api: database unavailable", "operation", op, "error", err.Error())
		return huma.ErrorWithHeaders(huma.Error503ServiceUnavailable("the database is unavailable; retry shortly"),
			http.Header{"Retry-After": {retryAfter}})
	}
	h.logger.ErrorContext(ctx, "api: unexpected error", "operation", op, "error", err.Error())
	return huma.Error500InternalServerError("unexpected error")
}
