// Package push sends push notifications through the Firebase Cloud Messaging
// HTTP v1 API.
package push

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/rfd-notify/rfd/internal/delivery/channels"
)

// Provider is the Outcome.Provider value of this package.
const Provider = "fcm"

// DefaultBaseURL is the FCM API.
const DefaultBaseURL = "https://fcm.googleapis.com"

// Scope is the OAuth scope FCM HTTP v1 requires.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// DefaultTokenURL is Google's OAuth 2.0 token endpoint for the JWT bearer
// grant (the value of golang.org/x/oauth2/google.JWTTokenURL).
const DefaultTokenURL = "https://oauth2.googleapis.com/token"

// FCM error codes (details[].errorCode of the FCM v1 error body).
const (
	// The token is no longer valid (app uninstalled, token expired): the
	// caller should disable the device.
	ErrUnregistered = "UNREGISTERED"
	// The request is invalid: a malformed token, or a payload FCM rejects.
	ErrInvalidArgument = "INVALID_ARGUMENT"
	// The token belongs to another Firebase project: disable the device.
	ErrSenderIDMismatch = "SENDER_ID_MISMATCH"
	ErrQuotaExceeded    = "QUOTA_EXCEEDED"
	ErrUnavailable      = "UNAVAILABLE"
	ErrInternal         = "INTERNAL"
	// APNs/web-push credentials in the Firebase project are wrong.
	ErrThirdPartyAuth = "THIRD_PARTY_AUTH_ERROR"
)

// Config configures the FCM client.
type Config struct {
	BaseURL   string // "" means DefaultBaseURL
	ProjectID string
	// TokenSource supplies the OAuth access token, e.g. from
	// ServiceAccountTokenSource. It should cache tokens; New wraps it in
	// oauth2.ReuseTokenSource, which is a no-op for an already caching one.
	TokenSource oauth2.TokenSource
}

// Message is one push notification. Title and Body must be PHI-free.
type Message struct {
	Token      string // FCM registration token of the device
	Title      string
	Body       string
	Data       map[string]string
	DeliveryID string // sent as data["delivery_id"] so the app can ack it
}

// Client sends push notifications. It is safe for concurrent use.
type Client struct {
	endpoint string
	ts       oauth2.TokenSource
	hc       *http.Client
}

// New validates cfg and returns a Client. A nil hc means an *http.Client
// with a 30s timeout. hc is used for FCM only; the token source uses its own.
func New(cfg Config, hc *http.Client) (*Client, error) {
	if cfg.ProjectID == "" {
		return nil, errors.New("push: config: ProjectID is required")
	}
	if cfg.TokenSource == nil {
		return nil, errors.New("push: config: TokenSource is required")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if _, err := url.Parse(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("push: config: BaseURL: %w", err)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/v1/projects/" + url.PathEscape(cfg.ProjectID) + "/messages:send",
		ts:       oauth2.ReuseTokenSource(nil, cfg.TokenSource),
		hc:       hc,
	}, nil
}

// serviceAccountKey is the part of a Google service-account JSON key we use.
type serviceAccountKey struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

// ServiceAccountTokenSource returns a caching token source that exchanges a
// JWT signed with the service account's key for an access token (RFC 7523
// JWT bearer grant) with the firebase.messaging scope. tokenURL overrides
// the key's token_uri (tests); "" uses token_uri or DefaultTokenURL.
//
// It builds the same *jwt.Config that golang.org/x/oauth2/google's
// JWTConfigFromJSON builds; that package is not imported because it pulls in
// cloud.google.com/go/compute/metadata, a module this repo does not require.
//
// ctx is kept for every later token fetch: pass a long-lived context, and
// put an *http.Client under oauth2.HTTPClient in it to control that traffic.
func ServiceAccountTokenSource(ctx context.Context, jsonKey []byte, tokenURL string) (oauth2.TokenSource, error) {
	var key serviceAccountKey
	if err := json.Unmarshal(jsonKey, &key); err != nil {
		return nil, fmt.Errorf("push: service account key: %w", err)
	}
	if key.Type != "service_account" {
		return nil, fmt.Errorf("push: service account key: type is %q, want \"service_account\"", key.Type)
	}
	if key.ClientEmail == "" || key.PrivateKey == "" {
		return nil, errors.New("push: service account key: client_email and private_key are required")
	}
	if tokenURL == "" {
		tokenURL = key.TokenURI
	}
	if tokenURL == "" {
		tokenURL = DefaultTokenURL
	}
	cfg := &jwt.Config{
		Email:        key.ClientEmail,
		PrivateKey:   []byte(key.PrivateKey),
		PrivateKeyID: key.PrivateKeyID,
		Scopes:       []string{Scope},
		TokenURL:     tokenURL,
	}
	// Fail now on an unusable key rather than on the first send (which
	// would look like a transient token error and be retried forever).
	if err := checkRSAKey(cfg.PrivateKey); err != nil {
		return nil, fmt.Errorf("push: service account key: private_key: %w", err)
	}
	return cfg.TokenSource(ctx), nil
}

// checkRSAKey accepts what jwt.Config accepts: a PEM (or bare DER) RSA key in
// PKCS#8 or PKCS#1 form.
func checkRSAKey(key []byte) error {
	if block, _ := pem.Decode(key); block != nil {
		key = block.Bytes
	}
	if k, err := x509.ParsePKCS8PrivateKey(key); err == nil {
		if _, ok := k.(*rsa.PrivateKey); !ok {
			return fmt.Errorf("%T is not an RSA key", k)
		}
		return nil
	}
	_, err := x509.ParsePKCS1PrivateKey(key)
	return err
}

type sendRequest struct {
	Message fcmMessage `json:"message"`
}

type fcmMessage struct {
	Token        string            `json:"token"`
	Notification *fcmNotification  `json:"notification,omitempty"`
	Data         map[string]string `json:"data,omitempty"`
}

type fcmNotification struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

type sendResponse struct {
	Name string `json:"name"`
}

// errorResponse is Google's API error body with FCM's error details.
type errorResponse struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type      string `json:"@type"`
			ErrorCode string `json:"errorCode"`
		} `json:"details"`
	} `json:"error"`
}

// Send delivers msg to one device. The Outcome carries FCM's message name
// ("projects/<p>/messages/<id>"). Errors are *channels.Failure; see classify.
func (c *Client) Send(ctx context.Context, msg Message) (channels.Outcome, error) {
	if msg.Token == "" {
		return channels.Outcome{}, channels.Permanent(ErrInvalidArgument, errors.New("push: device token is required"))
	}
	data := make(map[string]string, len(msg.Data)+1)
	for k, v := range msg.Data {
		data[k] = v
	}
	if msg.DeliveryID != "" {
		data["delivery_id"] = msg.DeliveryID
	}
	payload := sendRequest{Message: fcmMessage{Token: msg.Token, Data: data}}
	if msg.Title != "" || msg.Body != "" {
		payload.Message.Notification = &fcmNotification{Title: msg.Title, Body: msg.Body}
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return channels.Outcome{}, channels.Permanent("invalid_message", fmt.Errorf("push: encode: %w", err))
	}

	tok, err := c.ts.Token()
	if err != nil {
		// Our credentials, not the device: retry (and alert), never disable.
		return channels.Outcome{}, channels.Transient("auth", 0, fmt.Errorf("push: get access token: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return channels.Outcome{}, channels.Permanent("config", fmt.Errorf("push: build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	tok.SetAuthHeader(req)

	resp, err := c.hc.Do(req)
	if err != nil {
		return channels.Outcome{}, channels.FromTransportError(fmt.Errorf("push: send: %w", err))
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return channels.Outcome{}, channels.FromTransportError(fmt.Errorf("push: read response: %w", err))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		var r sendResponse
		if err := json.Unmarshal(respBody, &r); err != nil || r.Name == "" {
			return channels.Outcome{}, channels.Transient("bad_response", 0,
				fmt.Errorf("push: send: HTTP %d without a message name", resp.StatusCode))
		}
		return channels.Outcome{ProviderMessageID: r.Name, Provider: Provider}, nil
	}
	return channels.Outcome{}, classify(resp, respBody)
}

// classify maps an FCM error to a Failure:
//   - UNREGISTERED, INVALID_ARGUMENT, SENDER_ID_MISMATCH: permanent with that
//     Code. UNREGISTERED and SENDER_ID_MISMATCH mean "disable the device";
//     INVALID_ARGUMENT may also be a payload problem.
//   - QUOTA_EXCEEDED (429), UNAVAILABLE (503), INTERNAL (500) and any other
//     429/5xx: transient, with RetryAfter from the Retry-After header.
//   - 401/403 without an FCM code (our token or IAM permissions):
//     transient with Code "auth", it is not the device's fault.
//   - other 4xx: permanent.
func classify(resp *http.Response, body []byte) *channels.Failure {
	var e errorResponse
	_ = json.Unmarshal(body, &e)
	code := ""
	for _, d := range e.Error.Details {
		if d.ErrorCode != "" {
			code = d.ErrorCode
			break
		}
	}
	if code == "" {
		code = e.Error.Status // e.g. "UNAUTHENTICATED", "NOT_FOUND"
	}
	err := fmt.Errorf("push: send: HTTP %d: %s: %s", resp.StatusCode, code, e.Error.Message)
	retryAfter := channels.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())

	switch code {
	case ErrUnregistered, ErrInvalidArgument, ErrSenderIDMismatch:
		return channels.Permanent(code, err)
	case ErrQuotaExceeded, ErrUnavailable, ErrInternal:
		return channels.Transient(code, retryAfter, err)
	case ErrThirdPartyAuth:
		// A Firebase project setting (APNs key); retrying after ops fix it works.
		return channels.Transient(code, retryAfter, err)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return channels.Transient("auth", retryAfter, err)
	}
	// Anything else, including a bare 404 NOT_FOUND (a wrong ProjectID also
	// gives that): generic HTTP rules. Only an explicit UNREGISTERED may
	// lead the caller to disable a device.
	return channels.FromHTTPStatus(resp.StatusCode, resp.Header, code, err)
}
