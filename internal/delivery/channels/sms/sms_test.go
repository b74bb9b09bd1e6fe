package sms_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rfd-notify/rfd/internal/delivery/channels"
	"github.com/rfd-notify/rfd/internal/delivery/channels/sms"
)

const (
	testSID   = "AC00000000000000000000000000000001"
	testToken = "test-auth-token"
	testFrom  = "+15005550006"
	badNumber = "+15005550001" // Twilio's magic "invalid number" test value
)

// fakeTwilio speaks the part of Twilio's Messages API we use: it checks the
// path, basic auth and form fields, and honours the idempotency token.
type fakeTwilio struct {
	t *testing.T

	mu        sync.Mutex
	creates   int               // billable creates
	byToken   map[string]string // idempotency token -> message sid
	requests  []url.Values
	failFirst int           // respond 503 to this many requests first
	rateLimit string        // when set, respond 429 with this Retry-After
	delay     time.Duration // sleep before answering
}

func newFakeTwilio(t *testing.T) (*fakeTwilio, *httptest.Server) {
	f := &fakeTwilio{t: t, byToken: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func twilioError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{
		"code": code, "message": msg, "status": status,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
	})
}

func (f *fakeTwilio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/"+testSID+"/Messages.json" {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource was not found")
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != testSID || pass != testToken {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		twilioError(w, http.StatusBadRequest, 20001, "bad content type "+ct)
		return
	}
	if err := r.ParseForm(); err != nil {
		twilioError(w, http.StatusBadRequest, 20001, "bad form")
		return
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.PostForm)
	if f.failFirst > 0 {
		f.failFirst--
		twilioError(w, http.StatusServiceUnavailable, 20500, "Service Unavailable")
		return
	}
	if f.rateLimit != "" {
		w.Header().Set("Retry-After", f.rateLimit)
		twilioError(w, http.StatusTooManyRequests, 20429, "Too Many Requests")
		return
	}
	if r.PostForm.Get("To") == badNumber {
		twilioError(w, http.StatusBadRequest, 21211, "The 'To' number is not a valid phone number.")
		return
	}
	if r.PostForm.Get("To") == "" || r.PostForm.Get("From") == "" || r.PostForm.Get("Body") == "" {
		twilioError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
		return
	}
	token := r.Header.Get(sms.IdempotencyHeader)
	sid, seen := f.byToken[token]
	if !seen || token == "" {
		f.creates++
		sid = fmt.Sprintf("SM%032d", f.creates)
		if token != "" {
			f.byToken[token] = sid
		}
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"sid": sid, "status": "queued", "account_sid": testSID,
		"to": r.PostForm.Get("To"), "from": r.PostForm.Get("From"), "body": r.PostForm.Get("Body"),
		"error_code": nil, "error_message": nil,
	})
}

func (f *fakeTwilio) snapshot() (creates int, reqs []url.Values) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates, append([]url.Values(nil), f.requests...)
}

func newClient(t *testing.T, baseURL string) *sms.Client {
	t.Helper()
	c, err := sms.New(sms.Config{
		BaseURL: baseURL, AccountSID: testSID, AuthToken: testToken, From: testFrom,
		StatusCallbackURL: "https://rfd.example/callbacks/twilio",
	}, &http.Client{Timeout: 5 * time.Second})
	require.NoError(t, err)
	return c
}

func TestSendCreatesMessageAndIsIdempotent(t *testing.T) {
	fake, srv := newFakeTwilio(t)
	c := newClient(t, srv.URL)
	msg := sms.Message{To: "+14155550100", Body: "A new result is ready - open the portal.", DeliveryID: "del-123"}

	out, err := c.Send(context.Background(), msg)
	require.NoError(t, err)
	assert.Equal(t, "twilio", out.Provider)
	assert.Regexp(t, `^SM\d{32}$`, out.ProviderMessageID)

	creates, reqs := fake.snapshot()
	require.Len(t, reqs, 1)
	assert.Equal(t, 1, creates)
	assert.Equal(t, "+14155550100", reqs[0].Get("To"))
	assert.Equal(t, testFrom, reqs[0].Get("From"))
	assert.Equal(t, msg.Body, reqs[0].Get("Body"))
	assert.Equal(t, "https://rfd.example/callbacks/twilio?d=del-123", reqs[0].Get("StatusCallback"))

	// The same delivery sent again (a retry after an ambiguous failure) is
	// the same Twilio message and is billed once.
	out2, err := c.Send(context.Background(), msg)
	require.NoError(t, err)
	assert.Equal(t, out.ProviderMessageID, out2.ProviderMessageID)
	creates, reqs = fake.snapshot()
	assert.Len(t, reqs, 2)
	assert.Equal(t, 1, creates, "one billable create for one delivery id")

	// A different delivery is a different message.
	out3, err := c.Send(context.Background(), sms.Message{To: "+14155550100", Body: "x", DeliveryID: "del-124"})
	require.NoError(t, err)
	assert.NotEqual(t, out.ProviderMessageID, out3.ProviderMessageID)
	creates, _ = fake.snapshot()
	assert.Equal(t, 2, creates)
}

func TestSendWrongCredentialsIsPermanent(t *testing.T) {
	_, srv := newFakeTwilio(t)
	c, err := sms.New(sms.Config{BaseURL: srv.URL, AccountSID: testSID, AuthToken: "nope", From: testFrom}, nil)
	require.NoError(t, err)
	_, err = c.Send(context.Background(), sms.Message{To: "+14155550100", Body: "x", DeliveryID: "d"})
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "%v", err)
	assert.True(t, f.Permanent)
	assert.Equal(t, "20003", f.Code)
}

func TestSendInvalidNumberIsPermanent(t *testing.T) {
	_, srv := newFakeTwilio(t)
	c := newClient(t, srv.URL)
	_, err := c.Send(context.Background(), sms.Message{To: badNumber, Body: "x", DeliveryID: "d1"})
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "%v", err)
	assert.True(t, f.Permanent)
	assert.Equal(t, "21211", f.Code)
	assert.Contains(t, f.Error(), "not a valid phone number")
}

func TestSend503ThenSuccess(t *testing.T) {
	fake, srv := newFakeTwilio(t)
	fake.failFirst = 1
	c := newClient(t, srv.URL)
	msg := sms.Message{To: "+14155550100", Body: "x", DeliveryID: "d-503"}

	_, err := c.Send(context.Background(), msg)
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "%v", err)
	assert.False(t, f.Permanent)
	assert.Equal(t, "20500", f.Code)

	out, err := c.Send(context.Background(), msg) // the caller's retry
	require.NoError(t, err)
	assert.NotEmpty(t, out.ProviderMessageID)
	creates, _ := fake.snapshot()
	assert.Equal(t, 1, creates)
}

func TestSend429RetryAfter(t *testing.T) {
	fake, srv := newFakeTwilio(t)
	fake.rateLimit = "2"
	c := newClient(t, srv.URL)
	_, err := c.Send(context.Background(), sms.Message{To: "+14155550100", Body: "x", DeliveryID: "d-429"})
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "%v", err)
	assert.False(t, f.Permanent)
	assert.Equal(t, 2*time.Second, f.RetryAfter)
	assert.Equal(t, "20429", f.Code)
}

func TestSendTimeoutIsTransient(t *testing.T) {
	fake, srv := newFakeTwilio(t)
	fake.delay = 300 * time.Millisecond
	c := newClient(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Send(ctx, sms.Message{To: "+14155550100", Body: "x", DeliveryID: "d-slow"})
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "%v", err)
	assert.False(t, f.Permanent)
	assert.Equal(t, "timeout", f.Code)
}

func TestSendRequiresDeliveryID(t *testing.T) {
	_, srv := newFakeTwilio(t)
	c := newClient(t, srv.URL)
	_, err := c.Send(context.Background(), sms.Message{To: "+14155550100", Body: "x"})
	assert.True(t, channels.IsPermanent(err))
}

// handSignature computes X-Twilio-Signature straight from Twilio's
// description: base64(HMAC-SHA1(token, url + k1 + v1 + k2 + v2 ...)) with
// the POST parameters sorted by name.
func handSignature(token, u string, sortedPairs ...string) string {
	data := u
	for _, s := range sortedPairs {
		data += s
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestValidateSignatureHandComputed(t *testing.T) {
	u := "https://rfd.example/callbacks/twilio?d=del-123"
	params := url.Values{
		"MessageStatus": {"delivered"},
		"MessageSid":    {"SM00000000000000000000000000000001"},
		"AccountSid":    {testSID},
		"To":            {"+14155550100"},
	}
	// Sorted by name: AccountSid, MessageSid, MessageStatus, To.
	sig := handSignature(testToken, u,
		"AccountSid", testSID,
		"MessageSid", "SM00000000000000000000000000000001",
		"MessageStatus", "delivered",
		"To", "+14155550100")

	assert.True(t, sms.ValidateSignature(testToken, u, params, sig))

	assert.False(t, sms.ValidateSignature("other-token", u, params, sig), "wrong token")
	assert.False(t, sms.ValidateSignature(testToken, u, params, sig[:len(sig)-2]+"AA"), "wrong signature")
	assert.False(t, sms.ValidateSignature(testToken, u, params, ""), "missing signature")
	assert.False(t, sms.ValidateSignature("", u, params, sig), "no token configured")
	assert.False(t, sms.ValidateSignature(testToken, "https://rfd.example/callbacks/twilio?d=del-999", params, sig), "other delivery id")
	tampered := url.Values{}
	for k, v := range params {
		tampered[k] = v
	}
	tampered.Set("MessageStatus", "failed")
	assert.False(t, sms.ValidateSignature(testToken, u, tampered, sig), "tampered status")
}

// Vectors from the request-validator tests of Twilio's official helper
// library (twilio-python, tests/unit/test_request_validator.py).
func TestValidateSignatureTwilioVectors(t *testing.T) {
	const token = "12345"
	const uri = "https://mycompany.com/myapp.php?foo=1&bar=2"
	params := url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Digits":  {"1234"},
		"From":    {"+14158675309"},
		"To":      {"+18005551212"},
		"Caller":  {"+14158675309"},
	}
	assert.True(t, sms.ValidateSignature(token, uri, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="))
	// The URL as seen behind a proxy with an explicit port still validates.
	assert.True(t, sms.ValidateSignature(token, "https://mycompany.com:1234/myapp.php?foo=1&bar=2", params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="))
	// Twilio may have signed the URL with the default port spelled out.
	assert.True(t, sms.ValidateSignature(token, uri, params, "kvajT1Ptam85bY51eRf/AJRuM3w="))
	assert.True(t, sms.ValidateSignature(token, "http://mycompany.com/myapp.php?foo=1&bar=2", params, "0ZXoZLH/DfblKGATFgpif+LLRf4="))

	// Repeated parameter: each value, sorted, follows the name.
	dup := url.Values{"Sid": {"CA123"}, "SidAccount": {"AC123"}, "Digits": {"5678", "1234"}}
	assert.True(t, sms.ValidateSignature(token, uri, dup, "IK+Dwps556ElfBT0I3Rgjkr1wJU="))

	assert.False(t, sms.ValidateSignature(token, uri, params, "IK+Dwps556ElfBT0I3Rgjkr1wJU="))
}

func TestMapStatus(t *testing.T) {
	for in, want := range map[string]struct {
		status string
		final  bool
	}{
		"accepted":    {"queued", false},
		"scheduled":   {"queued", false},
		"queued":      {"queued", false},
		"sending":     {"sending", false},
		"sent":        {"sent", false},
		"delivered":   {"delivered", true},
		"read":        {"delivered", true},
		"undelivered": {"undelivered", true},
		"failed":      {"failed", true},
		"canceled":    {"failed", true},
		"received":    {"", false},
		"bogus":       {"", false},
	} {
		got, final := sms.MapStatus(in)
		assert.Equal(t, want.status, got, in)
		assert.Equal(t, want.final, final, in)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	_, err := sms.New(sms.Config{AuthToken: "t", From: "+1"}, nil)
	assert.Error(t, err)
	_, err = sms.New(sms.Config{AccountSID: "AC", AuthToken: "t"}, nil)
	assert.Error(t, err)
	c, err := sms.New(sms.Config{AccountSID: "AC", AuthToken: "t", From: "+1"}, nil)
	assert.NoError(t, err)
	assert.NotNil(t, c)
}
