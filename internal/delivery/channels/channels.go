// Package channels holds the types shared by the provider clients in its
// subpackages (email, sms, push, webhook): a successful Outcome and a typed
// Failure the delivery consumer uses to decide between "retry later" and
// "give up / disable the address".
//
// The provider clients never log. Their errors name the provider, the
// operation and the provider's own error code/message, never the message
// body, so they are safe to log under the "no PHI in logs" rule.
package channels

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Outcome is what a provider returns when it accepted a message.
type Outcome struct {
	// ProviderMessageID is the provider's id for the message (Twilio SID,
	// FCM message name, SMTP Message-ID, webhook-id), stored on the delivery
	// so later status callbacks can be matched to it.
	ProviderMessageID string
	// Provider names the provider ("smtp", "twilio", "fcm", "webhook").
	Provider string
}

// Failure is the error every provider client returns when a send did not
// succeed. The caller classifies with errors.As(err, &f):
//
//   - Permanent: retrying the same message cannot succeed (invalid address,
//     number or device token, rejected payload, endpoint gone). Code says
//     which, so the caller can e.g. disable a device on "UNREGISTERED".
//   - otherwise transient: timeouts, connection errors, 5xx, 429. RetryAfter,
//     when non-zero, is the provider's own back-off hint (Retry-After header);
//     callers should clamp it to their own maximum.
type Failure struct {
	Permanent  bool
	RetryAfter time.Duration
	// Code is the provider's error code when it gave one ("21211",
	// "UNREGISTERED", "550", "gone"), otherwise a short generic code
	// ("http_503", "timeout", "network").
	Code string
	Err  error
}

func (f *Failure) Error() string {
	kind := "transient"
	if f.Permanent {
		kind = "permanent"
	}
	msg := kind + " failure"
	if f.Code != "" {
		msg += " [" + f.Code + "]"
	}
	if f.RetryAfter > 0 {
		msg += " (retry after " + f.RetryAfter.String() + ")"
	}
	if f.Err != nil {
		msg += ": " + f.Err.Error()
	}
	return msg
}

func (f *Failure) Unwrap() error { return f.Err }

// Permanent returns a permanent Failure.
func Permanent(code string, err error) *Failure {
	return &Failure{Permanent: true, Code: code, Err: err}
}

// Transient returns a transient Failure; retryAfter may be zero.
func Transient(code string, retryAfter time.Duration, err error) *Failure {
	return &Failure{RetryAfter: retryAfter, Code: code, Err: err}
}

// AsFailure extracts the *Failure from err's chain.
func AsFailure(err error) (*Failure, bool) {
	var f *Failure
	ok := errors.As(err, &f)
	return f, ok
}

// IsPermanent reports whether err carries a permanent Failure. Errors that
// are not Failures are treated as transient: unknown means "try again".
func IsPermanent(err error) bool {
	f, ok := AsFailure(err)
	return ok && f.Permanent
}

// ParseRetryAfter parses an HTTP Retry-After value, either delay-seconds or
// an HTTP date (RFC 9110 §10.2.3), relative to now. It returns 0 for an
// empty, malformed or past value.
func ParseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(value, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(value); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// FromHTTPStatus applies the generic HTTP classification shared by the HTTP
// providers when the provider gave no more specific error code:
// 408, 429 and 5xx are transient (with Retry-After from h); any other 4xx is
// permanent. It must only be called for non-2xx statuses.
func FromHTTPStatus(status int, h http.Header, code string, err error) *Failure {
	if code == "" {
		code = "http_" + strconv.Itoa(status)
	}
	if IsTransientHTTPStatus(status) {
		return Transient(code, ParseRetryAfter(h.Get("Retry-After"), time.Now()), err)
	}
	return Permanent(code, err)
}

// IsTransientHTTPStatus reports whether an HTTP status is worth retrying.
func IsTransientHTTPStatus(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// FromTransportError classifies an error that happened before any response
// was received (dial, TLS, timeout, reset). Those are always transient: the
// provider may or may not have acted, which is why every client sends an
// idempotency key or stable id where the provider supports one.
func FromTransportError(err error) *Failure {
	code := "network"
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		code = "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		code = "timeout"
	}
	return Transient(code, 0, err)
}
