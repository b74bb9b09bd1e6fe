package push_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/rfd-notify/rfd/internal/delivery/channels"
	"github.com/rfd-notify/rfd/internal/delivery/channels/push"
)

const (
	projectID   = "rfd-test"
	clientEmail = "rfd-push@rfd-test.iam.gserviceaccount.com"
	keyID       = "0123456789abcdef"
)

// --- fake Google OAuth token endpoint ---------------------------------------

// tokenServer implements the JWT bearer grant (RFC 7523) the way Google's
// token endpoint does: it verifies the assertion's RS256 signature with the
// service account's public key and its claims, then issues an access token.
type tokenServer struct {
	t   *testing.T
	pub *rsa.PublicKey
	url string

	mu     sync.Mutex
	issued map[string]bool
	calls  int
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthError(w, "unsupported_grant_type")
		return
	}
	if err := s.verify(r.PostForm.Get("assertion")); err != nil {
		s.t.Logf("token endpoint rejected assertion: %v", err)
		oauthError(w, "invalid_grant")
		return
	}
	s.mu.Lock()
	tok := fmt.Sprintf("ya29.test-%d", len(s.issued)+1)
	s.issued[tok] = true
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
}

func oauthError(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func (s *tokenServer) verify(assertion string) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return fmt.Errorf("assertion has %d parts", len(parts))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(s.pub, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	var header struct{ Alg, Typ, Kid string }
	if err := decodeSegment(parts[0], &header); err != nil {
		return err
	}
	if header.Alg != "RS256" || header.Kid != keyID {
		return fmt.Errorf("header %+v", header)
	}
	var claims struct {
		Iss, Scope, Aud string
		Iat, Exp        int64
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return err
	}
	now := time.Now().Unix()
	switch {
	case claims.Iss != clientEmail:
		return fmt.Errorf("iss %q", claims.Iss)
	case claims.Scope != push.Scope:
		return fmt.Errorf("scope %q", claims.Scope)
	case claims.Aud != s.url:
		return fmt.Errorf("aud %q, want %q", claims.Aud, s.url)
	case claims.Exp <= now || claims.Exp > now+3700 || claims.Iat > now+60:
		return fmt.Errorf("iat %d exp %d now %d", claims.Iat, claims.Exp, now)
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (s *tokenServer) valid(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued[tok]
}

func (s *tokenServer) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// --- fake FCM HTTP v1 ---------------------------------------------------------

type fcmServer struct {
	t      *testing.T
	tokens *tokenServer

	mu   sync.Mutex
	sent []map[string]any // "message" objects accepted
}

func fcmError(w http.ResponseWriter, status int, statusName, errorCode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	details := []any{}
	if errorCode != "" {
		details = append(details, map[string]string{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": errorCode})
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": status, "message": msg, "status": statusName, "details": details,
	}})
}

func (s *fcmServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/projects/"+projectID+"/messages:send" {
		fcmError(w, http.StatusNotFound, "NOT_FOUND", "", "Requested entity was not found.")
		return
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "Bearer ") || !s.tokens.valid(strings.TrimPrefix(auth, "Bearer ")) {
		fcmError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "", "Request had invalid authentication credentials.")
		return
	}
	var req struct {
		Message map[string]any `json:"message"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Message == nil {
		fcmError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid JSON payload received.")
		return
	}
	switch req.Message["token"] {
	case "unregistered-token":
		fcmError(w, http.StatusNotFound, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
	case "malformed-token":
		fcmError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token")
	case "other-project-token":
		fcmError(w, http.StatusForbidden, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch")
	case "unavailable":
		fcmError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.")
	case "internal":
		fcmError(w, http.StatusInternalServerError, "INTERNAL", "INTERNAL", "Internal error encountered.")
	case "quota":
		w.Header().Set("Retry-After", "7")
		fcmError(w, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded.")
	default:
		s.mu.Lock()
		s.sent = append(s.sent, req.Message)
		n := len(s.sent)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"name": fmt.Sprintf("projects/%s/messages/%d", projectID, 1000+n)})
	}
}

// --- fixtures -----------------------------------------------------------------

func serviceAccountJSON(t *testing.T, key *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	b, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     projectID,
		"private_key_id": keyID,
		"private_key":    string(pemKey),
		"client_email":   clientEmail,
		"client_id":      "1234567890",
		"token_uri":      "https://oauth2.googleapis.com/token", // overridden in tests
	})
	require.NoError(t, err)
	return b
}

type env struct {
	tokens *tokenServer
	fcm    *fcmServer
	fcmURL string
	source oauth2.TokenSource
	client *push.Client
}

// setup starts the fake token endpoint and FCM. signer is the key the
// service-account file contains; the token endpoint trusts trusted's public
// key (normally the same key).
func setup(t *testing.T, signer, trusted *rsa.PrivateKey) env {
	t.Helper()
	ts := &tokenServer{t: t, pub: &trusted.PublicKey, issued: map[string]bool{}}
	tokenSrv := httptest.NewServer(ts)
	t.Cleanup(tokenSrv.Close)
	ts.url = tokenSrv.URL + "/token"

	fs := &fcmServer{t: t, tokens: ts}
	fcmSrv := httptest.NewServer(fs)
	t.Cleanup(fcmSrv.Close)

	src, err := push.ServiceAccountTokenSource(context.Background(), serviceAccountJSON(t, signer), ts.url)
	require.NoError(t, err)
	c, err := push.New(push.Config{BaseURL: fcmSrv.URL, ProjectID: projectID, TokenSource: src}, &http.Client{Timeout: 5 * time.Second})
	require.NoError(t, err)
	return env{tokens: ts, fcm: fs, fcmURL: fcmSrv.URL, source: src, client: c}
}

var (
	keyOnce sync.Once
	keyA    *rsa.PrivateKey
	keyB    *rsa.PrivateKey
)

func keys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	keyOnce.Do(func() {
		var err error
		keyA, err = rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		keyB, err = rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
	})
	return keyA, keyB
}

// --- tests ----------------------------------------------------------------------

func TestSendSuccessWithServiceAccountToken(t *testing.T) {
	key, _ := keys(t)
	e := setup(t, key, key)

	msg := push.Message{
		Token: "device-token-1", Title: "RFD Notify", Body: "A new result is ready - open the portal.",
		Data: map[string]string{"kind": "result_ready"}, DeliveryID: "del-1",
	}
	out, err := e.client.Send(context.Background(), msg)
	require.NoError(t, err)
	assert.Equal(t, "fcm", out.Provider)
	assert.Equal(t, "projects/rfd-test/messages/1001", out.ProviderMessageID)

	_, err = e.client.Send(context.Background(), msg)
	require.NoError(t, err)
	assert.Equal(t, 1, e.tokens.callCount(), "the access token is cached across sends")

	e.fcm.mu.Lock()
	defer e.fcm.mu.Unlock()
	require.Len(t, e.fcm.sent, 2)
	got := e.fcm.sent[0]
	assert.Equal(t, "device-token-1", got["token"])
	assert.Equal(t, map[string]any{"title": "RFD Notify", "body": msg.Body}, got["notification"])
	assert.Equal(t, map[string]any{"kind": "result_ready", "delivery_id": "del-1"}, got["data"])
	assert.Equal(t, map[string]string{"kind": "result_ready"}, msg.Data, "caller's map is not modified")
}

func TestSendErrorClassification(t *testing.T) {
	key, _ := keys(t)
	e := setup(t, key, key)

	for _, tc := range []struct {
		token      string
		permanent  bool
		code       string
		retryAfter time.Duration
	}{
		{"unregistered-token", true, push.ErrUnregistered, 0},
		{"malformed-token", true, push.ErrInvalidArgument, 0},
		{"other-project-token", true, push.ErrSenderIDMismatch, 0},
		{"unavailable", false, push.ErrUnavailable, 0},
		{"internal", false, push.ErrInternal, 0},
		{"quota", false, push.ErrQuotaExceeded, 7 * time.Second},
	} {
		t.Run(tc.token, func(t *testing.T) {
			_, err := e.client.Send(context.Background(), push.Message{Token: tc.token, Title: "RFD", Body: "A new result is ready", DeliveryID: "d"})
			f, ok := channels.AsFailure(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, tc.permanent, f.Permanent)
			assert.Equal(t, tc.code, f.Code)
			assert.Equal(t, tc.retryAfter, f.RetryAfter)
			assert.NotContains(t, f.Error(), "A new result", "no message content in errors")
		})
	}
}

func TestSendWrongProjectIsNotUnregistered(t *testing.T) {
	key, _ := keys(t)
	e := setup(t, key, key)
	// Same token source, wrong project: FCM answers a bare 404. That must
	// not look like UNREGISTERED, or every device would be disabled.
	c, err := push.New(push.Config{BaseURL: e.fcmURL, ProjectID: "other", TokenSource: e.source}, nil)
	require.NoError(t, err)
	_, err = c.Send(context.Background(), push.Message{Token: "device-token-1", Title: "t"})
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "%v", err)
	assert.NotEqual(t, push.ErrUnregistered, f.Code)
}

func TestAssertionSignedWithWrongKeyIsRejected(t *testing.T) {
	keyA, keyB := keys(t)
	e := setup(t, keyB, keyA) // the file holds B, Google knows A
	_, err := e.client.Send(context.Background(), push.Message{Token: "device-token-1", Title: "t"})
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "%v", err)
	assert.False(t, f.Permanent, "a credentials problem must not disable the device")
	assert.Equal(t, "auth", f.Code)
	e.fcm.mu.Lock()
	defer e.fcm.mu.Unlock()
	assert.Empty(t, e.fcm.sent)
}

func TestServiceAccountTokenSourceRejectsBadKeys(t *testing.T) {
	key, _ := keys(t)
	_, err := push.ServiceAccountTokenSource(context.Background(), []byte("{"), "")
	assert.Error(t, err)

	var sa map[string]string
	require.NoError(t, json.Unmarshal(serviceAccountJSON(t, key), &sa))

	sa["type"] = "authorized_user"
	b, _ := json.Marshal(sa)
	_, err = push.ServiceAccountTokenSource(context.Background(), b, "")
	assert.Error(t, err)

	sa["type"] = "service_account"
	sa["private_key"] = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"
	b, _ = json.Marshal(sa)
	_, err = push.ServiceAccountTokenSource(context.Background(), b, "")
	assert.Error(t, err)
}

func TestNewValidatesConfig(t *testing.T) {
	_, err := push.New(push.Config{ProjectID: "p"}, nil)
	assert.Error(t, err)
	_, err = push.New(push.Config{TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "x"})}, nil)
	assert.Error(t, err)
}
