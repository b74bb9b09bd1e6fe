// Package sms sends SMS through Twilio's Programmable Messaging REST API (or
// any Twilio-compatible API) and verifies Twilio's status callbacks.
package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rfd-notify/rfd/internal/delivery/channels"
)

// Provider is the Outcome.Provider value of this package.
const Provider = "twilio"

// DefaultBaseURL is Twilio's REST API.
const DefaultBaseURL = "https://api.twilio.com"

// IdempotencyHeader carries the delivery id on every create so that a send
// retried after an ambiguous outcome (timeout, connection reset) is created,
// and billed, once by a provider that de-duplicates on it. That Twilio's own
// Messages API does is not confirmed here; the README says so.
const IdempotencyHeader = "I-Twilio-Idempotency-Token"

// Twilio error codes that mean the destination number cannot receive the
// message: retrying is pointless.
const (
	ErrCodeInvalidTo    = 21211 // invalid 'To' phone number
	ErrCodeUnsubscribed = 21610 // recipient replied STOP
	ErrCodeNotMobile    = 21614 // 'To' is not a valid mobile number
)

// Config configures the Twilio client.
type Config struct {
	BaseURL    string // "" means DefaultBaseURL
	AccountSID string
	AuthToken  string
	From       string // sender number (E.164) or messaging service sender
	// StatusCallbackURL, when set, receives Twilio's status callbacks; the
	// delivery id is appended as "?d=<id>" so the callback can be matched
	// without putting anything but an opaque id in the URL.
	StatusCallbackURL string
}

// Message is one SMS. Body must already be PHI-free (see DESIGN.md).
type Message struct {
	To         string // E.164
	Body       string
	DeliveryID string // opaque; idempotency token and callback correlation
}

// Client sends SMS. It is safe for concurrent use.
type Client struct {
	cfg      Config
	endpoint string
	hc       *http.Client
}

// New validates cfg and returns a Client. A nil hc means an *http.Client
// with a 30s timeout.
func New(cfg Config, hc *http.Client) (*Client, error) {
	if cfg.AccountSID == "" || cfg.AuthToken == "" {
		return nil, errors.New("sms: config: AccountSID and AuthToken are required")
	}
	if cfg.From == "" {
		return nil, errors.New("sms: config: From is required")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if _, err := url.Parse(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("sms: config: BaseURL: %w", err)
	}
	if cfg.StatusCallbackURL != "" {
		if _, err := url.Parse(cfg.StatusCallbackURL); err != nil {
			return nil, fmt.Errorf("sms: config: StatusCallbackURL: %w", err)
		}
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	endpoint := strings.TrimRight(cfg.BaseURL, "/") + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json"
	return &Client{cfg: cfg, endpoint: endpoint, hc: hc}, nil
}

// messageResource is the part of Twilio's Message resource we use.
type messageResource struct {
	SID    string `json:"sid"`
	Status string `json:"status"`
}

// apiError is Twilio's REST error body.
type apiError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// Send creates the message. The Outcome carries the message SID. Errors are
// *channels.Failure: an invalid or unreachable number (21211, 21614, 21610)
// and other 4xx are permanent; 429, 5xx and network errors are transient,
// with RetryAfter from the Retry-After header.
func (c *Client) Send(ctx context.Context, msg Message) (channels.Outcome, error) {
	if msg.DeliveryID == "" || msg.To == "" || msg.Body == "" {
		return channels.Outcome{}, channels.Permanent("invalid_message", errors.New("sms: To, Body and DeliveryID are required"))
	}
	form := url.Values{}
	form.Set("To", msg.To)
	form.Set("From", c.cfg.From)
	form.Set("Body", msg.Body)
	if c.cfg.StatusCallbackURL != "" {
		form.Set("StatusCallback", callbackURL(c.cfg.StatusCallbackURL, msg.DeliveryID))
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return channels.Outcome{}, channels.Permanent("config", fmt.Errorf("sms: build request: %w", err))
	}
	req.SetBasicAuth(c.cfg.AccountSID, c.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(IdempotencyHeader, msg.DeliveryID)

	resp, err := c.hc.Do(req)
	if err != nil {
		return channels.Outcome{}, channels.FromTransportError(fmt.Errorf("sms: create message: %w", err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return channels.Outcome{}, channels.FromTransportError(fmt.Errorf("sms: read response: %w", err))
	}

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		var m messageResource
		if err := json.Unmarshal(body, &m); err != nil || m.SID == "" {
			// Twilio accepted something but we cannot tell what; a retry is
			// safe because of the idempotency token.
			return channels.Outcome{}, channels.Transient("bad_response", 0,
				fmt.Errorf("sms: create message: HTTP %d without a message sid", resp.StatusCode))
		}
		return channels.Outcome{ProviderMessageID: m.SID, Provider: Provider}, nil
	}
	return channels.Outcome{}, classify(resp, body)
}

// classify turns a non-2xx Twilio response into a Failure.
func classify(resp *http.Response, body []byte) *channels.Failure {
	var e apiError
	_ = json.Unmarshal(body, &e) // a non-JSON error page still has a status
	code := ""
	if e.Code != 0 {
		code = strconv.Itoa(e.Code)
	}
	err := fmt.Errorf("sms: create message: HTTP %d: twilio error %d: %s", resp.StatusCode, e.Code, e.Message)
	switch e.Code {
	case ErrCodeInvalidTo, ErrCodeNotMobile, ErrCodeUnsubscribed:
		return channels.Permanent(code, err)
	}
	// HTTP 400 (validation) and the other 4xx are permanent; 408, 429 and
	// 5xx are transient with Retry-After.
	return channels.FromHTTPStatus(resp.StatusCode, resp.Header, code, err)
}

// callbackURL appends the delivery id as the "d" query parameter.
func callbackURL(base, deliveryID string) string {
	u, err := url.Parse(base) // validated in New
	if err != nil {
		return base
	}
	q := u.Query()
	q.Set("d", deliveryID)
	u.RawQuery = q.Encode()
	return u.String()
}
