package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/rfd-notify/rfd/internal/delivery/channels"
)

// Provider is the Outcome.Provider value of this package.
const Provider = "webhook"

// DefaultTimeout bounds one delivery attempt (connect to end of response).
const DefaultTimeout = 15 * time.Second

// Endpoint is an integrator's webhook subscription.
type Endpoint struct {
	URL string
	// Secrets sign every request; Secrets[0] is the current one. During a
	// rotation also list the previous one: the request then carries one
	// signature per secret.
	Secrets []string
}

// Config configures the webhook client.
type Config struct {
	// AllowLoopback is test mode: it permits plain http and connections to
	// loopback addresses (httptest servers). Every other non-public address
	// stays blocked.
	AllowLoopback bool
	Timeout       time.Duration // 0 means DefaultTimeout
	UserAgent     string        // "" means "rfd-notify-webhooks/1"
}

// Client delivers webhooks. It is safe for concurrent use.
type Client struct {
	cfg Config
	hc  *http.Client
	now func() time.Time
}

// New returns a Client whose connections go through GuardDialer(dialer,
// cfg.AllowLoopback). dialer may be nil; pass one to set keep-alive or a
// custom Resolver. The transport ignores HTTP(S)_PROXY: through a proxy the
// guard would only see the proxy's address.
func New(cfg Config, dialer *net.Dialer) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "rfd-notify-webhooks/1"
	}
	if dialer == nil {
		dialer = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           GuardDialer(dialer, cfg.AllowLoopback).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	hc := &http.Client{
		Transport: transport,
		Timeout:   cfg.Timeout,
		// Never follow redirects: the target would escape URL validation,
		// and a moved endpoint must be re-registered by its owner.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Client{cfg: cfg, hc: hc, now: time.Now}
}

// Send POSTs body (JSON) to ep.URL, signed with every secret of ep. msgID
// is the webhook-id: pass the delivery id so that retries carry the same id.
// Each attempt gets a fresh timestamp and signatures.
//
// Outcome.ProviderMessageID is msgID. Errors are *channels.Failure:
//   - 410 Gone: permanent, Code "gone": the caller disables the endpoint
//   - 3xx: permanent, Code "redirect" (not followed)
//   - other 4xx: permanent, Code "http_<status>"
//   - 408, 429, 5xx: transient, RetryAfter from Retry-After
//   - timeouts and network errors: transient
//   - invalid URL/secret: permanent "invalid_endpoint"; a non-public address:
//     permanent "blocked_address" (wrapping *BlockedAddressError)
func (c *Client) Send(ctx context.Context, ep Endpoint, msgID string, body []byte) (channels.Outcome, error) {
	u, err := ValidateURL(ep.URL, c.cfg.AllowLoopback)
	if err != nil {
		return channels.Outcome{}, channels.Permanent("invalid_endpoint", err)
	}
	headers, err := Headers(ep.Secrets, msgID, c.now(), body)
	if err != nil {
		return channels.Outcome{}, channels.Permanent("invalid_endpoint", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return channels.Outcome{}, channels.Permanent("invalid_endpoint", fmt.Errorf("webhook: build request: %w", err))
	}
	for k, v := range headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)

	// Errors name the host only: a URL's path or query may carry the
	// integrator's own tokens.
	host := u.Host
	resp, err := c.hc.Do(req)
	if err != nil {
		var blocked *BlockedAddressError
		if errors.As(err, &blocked) {
			return channels.Outcome{}, channels.Permanent("blocked_address", fmt.Errorf("webhook: POST %s: %w", host, blocked))
		}
		return channels.Outcome{}, channels.FromTransportError(fmt.Errorf("webhook: POST %s: %w", host, unwrapURLError(err)))
	}
	// Drain a little so the connection can be reused; the receiver's
	// response body is never logged or returned.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()

	status := resp.StatusCode
	switch {
	case status >= 200 && status < 300:
		return channels.Outcome{ProviderMessageID: msgID, Provider: Provider}, nil
	case status == http.StatusGone:
		return channels.Outcome{}, channels.Permanent("gone", fmt.Errorf("webhook: POST %s: HTTP 410 Gone", host))
	case status >= 300 && status < 400:
		return channels.Outcome{}, channels.Permanent("redirect", fmt.Errorf("webhook: POST %s: HTTP %d redirect not followed", host, status))
	default:
		return channels.Outcome{}, channels.FromHTTPStatus(status, resp.Header, "", fmt.Errorf("webhook: POST %s: HTTP %d", host, status))
	}
}

// unwrapURLError drops *url.Error's wrapper, whose message repeats the full
// URL (see Send), keeping the cause for errors.Is/As.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
