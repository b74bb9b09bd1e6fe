package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rfd-notify/rfd/internal/delivery/channels"
	"github.com/rfd-notify/rfd/internal/delivery/channels/webhook"
	"github.com/rfd-notify/rfd/internal/testkit/providertest"
)

// --- an independent verifier, written from the Standard Webhooks spec --------
//
// signed content = "${webhook-id}.${webhook-timestamp}.${body}"
// key            = base64-decode(secret without the "whsec_" prefix)
// signature      = base64(HMAC-SHA256(key, signed content))
// header         = space-separated "v1,<signature>" entries; any one may match
// the timestamp must be within a tolerance (5 minutes) of the receiver's clock.

var errNoMatch = errors.New("no matching signature")

func verify(secret string, h http.Header, body []byte, now time.Time) error {
	id := h.Get("webhook-id")
	tsText := h.Get("webhook-timestamp")
	sigHeader := h.Get("webhook-signature")
	if id == "" || tsText == "" || sigHeader == "" {
		return errors.New("missing headers")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp: %w", err)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp outside tolerance: %v", d)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + tsText + "." + string(body)))
	expected := mac.Sum(nil)
	for _, entry := range strings.Split(sigHeader, " ") {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, expected) {
			return nil
		}
	}
	return errNoMatch
}

// --- a receiver ---------------------------------------------------------------

type request struct {
	Header http.Header
	Body   []byte
}

type receiver struct {
	mu       sync.Mutex
	requests []request
	conns    atomic.Int32
	// responses, consumed in order; the last one repeats.
	responses []func(w http.ResponseWriter)
	hits      int
}

func status(code int, headers ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
	}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.requests = append(r.requests, request{Header: req.Header.Clone(), Body: body})
	respond := r.responses[min(r.hits, len(r.responses)-1)]
	r.hits++
	r.mu.Unlock()
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	respond(w)
}

func (r *receiver) got() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.requests...)
}

func startReceiver(t *testing.T, responses ...func(w http.ResponseWriter)) (*receiver, *httptest.Server) {
	t.Helper()
	r := &receiver{responses: responses}
	srv := httptest.NewUnstartedServer(r)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return r, srv
}

func failure(t *testing.T, err error) *channels.Failure {
	t.Helper()
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "error %v must be a *channels.Failure", err)
	return f
}

var body = []byte(`{"type":"result.ready","delivery_id":"del-1","portal_url":"https://portal.example/r/1"}`)

// --- signing --------------------------------------------------------------------

func TestSignStandardWebhooksVector(t *testing.T) {
	// The reference vector of the Standard Webhooks test suite.
	sig, err := webhook.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	require.NoError(t, err)
	assert.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sig)

	_, err = webhook.Sign("whsec_not base64!", "id", time.Now(), nil)
	assert.Error(t, err)
	_, err = webhook.Sign(webhook.GenerateSecret(), "", time.Now(), nil)
	assert.Error(t, err)
}

func TestGenerateSecret(t *testing.T) {
	a, b := webhook.GenerateSecret(), webhook.GenerateSecret()
	require.True(t, strings.HasPrefix(a, "whsec_"))
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	require.NoError(t, err)
	assert.Len(t, key, 32)
	assert.NotEqual(t, a, b)
}

func TestVerifierRejectsOldTimestampsAndWrongSecrets(t *testing.T) {
	secret := webhook.GenerateSecret()
	now := time.Now()
	h, err := webhook.Headers([]string{secret}, "del-1", now, body)
	require.NoError(t, err)
	require.NoError(t, verify(secret, h, body, now))

	assert.ErrorIs(t, verify(webhook.GenerateSecret(), h, body, now), errNoMatch)
	assert.ErrorIs(t, verify(secret, h, append([]byte(nil), append(body, ' ')...), now), errNoMatch)

	old, err := webhook.Headers([]string{secret}, "del-1", now.Add(-6*time.Minute), body)
	require.NoError(t, err)
	assert.Error(t, verify(secret, old, body, now), "older than 5 minutes")
}

// --- sending ----------------------------------------------------------------------

func testClient(t *testing.T) *webhook.Client {
	t.Helper()
	return webhook.New(webhook.Config{AllowLoopback: true, Timeout: 5 * time.Second}, nil)
}

func TestSendSignsAndKeepsIDAcrossRetries(t *testing.T) {
	rcv, srv := startReceiver(t,
		status(http.StatusServiceUnavailable, "Retry-After", "3"),
		status(http.StatusServiceUnavailable),
		status(http.StatusNoContent))
	c := testClient(t)
	secret := webhook.GenerateSecret()
	ep := webhook.Endpoint{URL: srv.URL + "/hooks/rfd", Secrets: []string{secret}}

	// First attempt and one retry fail with 503: transient.
	_, err := c.Send(context.Background(), ep, "del-42", body)
	f := failure(t, err)
	assert.False(t, f.Permanent)
	assert.Equal(t, 3*time.Second, f.RetryAfter)
	assert.Equal(t, "http_503", f.Code)

	_, err = c.Send(context.Background(), ep, "del-42", body)
	assert.False(t, failure(t, err).Permanent)

	// Second retry succeeds.
	out, err := c.Send(context.Background(), ep, "del-42", body)
	require.NoError(t, err)
	assert.Equal(t, channels.Outcome{ProviderMessageID: "del-42", Provider: "webhook"}, out)

	got := rcv.got()
	require.Len(t, got, 3)
	for i, r := range got {
		assert.Equal(t, "del-42", r.Header.Get("webhook-id"), "attempt %d", i)
		assert.Equal(t, body, r.Body)
		assert.NoError(t, verify(secret, r.Header, r.Body, time.Now()), "attempt %d", i)
		assert.Len(t, strings.Fields(r.Header.Get("webhook-signature")), 1)
	}
}

func TestSendDuringRotationCarriesTwoSignatures(t *testing.T) {
	rcv, srv := startReceiver(t, status(http.StatusOK))
	current, previous := webhook.GenerateSecret(), webhook.GenerateSecret()
	_, err := testClient(t).Send(context.Background(),
		webhook.Endpoint{URL: srv.URL, Secrets: []string{current, previous}}, "del-7", body)
	require.NoError(t, err)

	got := rcv.got()
	require.Len(t, got, 1)
	h := got[0].Header
	sigs := strings.Fields(h.Get("webhook-signature"))
	require.Len(t, sigs, 2)

	// Each receiver, on either secret, verifies the request.
	assert.NoError(t, verify(current, h, got[0].Body, time.Now()))
	assert.NoError(t, verify(previous, h, got[0].Body, time.Now()))
	assert.ErrorIs(t, verify(webhook.GenerateSecret(), h, got[0].Body, time.Now()), errNoMatch)

	// And each signature belongs to its own secret: current first.
	only := func(sig string) http.Header {
		c := h.Clone()
		c.Set("webhook-signature", sig)
		return c
	}
	assert.NoError(t, verify(current, only(sigs[0]), got[0].Body, time.Now()))
	assert.ErrorIs(t, verify(previous, only(sigs[0]), got[0].Body, time.Now()), errNoMatch)
	assert.NoError(t, verify(previous, only(sigs[1]), got[0].Body, time.Now()))
	assert.ErrorIs(t, verify(current, only(sigs[1]), got[0].Body, time.Now()), errNoMatch)
}

func TestSendGoneIsPermanent(t *testing.T) {
	_, srv := startReceiver(t, status(http.StatusGone))
	_, err := testClient(t).Send(context.Background(), webhook.Endpoint{URL: srv.URL, Secrets: []string{webhook.GenerateSecret()}}, "d", body)
	f := failure(t, err)
	assert.True(t, f.Permanent)
	assert.Equal(t, "gone", f.Code)
}

func TestSendRedirectIsPermanentAndNotFollowed(t *testing.T) {
	target, targetSrv := startReceiver(t, status(http.StatusOK))
	_, srv := startReceiver(t, status(http.StatusFound, "Location", targetSrv.URL+"/elsewhere"))
	_, err := testClient(t).Send(context.Background(), webhook.Endpoint{URL: srv.URL, Secrets: []string{webhook.GenerateSecret()}}, "d", body)
	f := failure(t, err)
	assert.True(t, f.Permanent)
	assert.Equal(t, "redirect", f.Code)
	assert.Empty(t, target.got(), "the redirect must not be followed")
}

func TestSendStatusClassification(t *testing.T) {
	retryAt := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		respond   func(w http.ResponseWriter)
		permanent bool
		code      string
		minRetry  time.Duration
	}{
		{status(http.StatusBadRequest), true, "http_400", 0},
		{status(http.StatusUnauthorized), true, "http_401", 0},
		{status(http.StatusNotFound), true, "http_404", 0},
		{status(http.StatusTooManyRequests, "Retry-After", retryAt), false, "http_429", 60 * time.Second},
		{status(http.StatusInternalServerError), false, "http_500", 0},
		{status(http.StatusBadGateway), false, "http_502", 0},
	} {
		t.Run(tc.code, func(t *testing.T) {
			_, srv := startReceiver(t, tc.respond)
			_, err := testClient(t).Send(context.Background(), webhook.Endpoint{URL: srv.URL, Secrets: []string{webhook.GenerateSecret()}}, "d", body)
			f := failure(t, err)
			assert.Equal(t, tc.permanent, f.Permanent)
			assert.Equal(t, tc.code, f.Code)
			assert.GreaterOrEqual(t, f.RetryAfter, tc.minRetry)
		})
	}
}

func TestSendTimeoutIsTransient(t *testing.T) {
	release := make(chan struct{})
	_, srv := startReceiver(t, func(w http.ResponseWriter) { <-release })
	defer close(release)
	c := webhook.New(webhook.Config{AllowLoopback: true, Timeout: 200 * time.Millisecond}, nil)
	_, err := c.Send(context.Background(), webhook.Endpoint{URL: srv.URL, Secrets: []string{webhook.GenerateSecret()}}, "d", body)
	f := failure(t, err)
	assert.False(t, f.Permanent)
	assert.Equal(t, "timeout", f.Code)
}

func TestSendRejectsBadEndpoints(t *testing.T) {
	c := testClient(t)
	for name, ep := range map[string]webhook.Endpoint{
		"no secret":  {URL: "https://hooks.example/x"},
		"bad secret": {URL: "https://hooks.example/x", Secrets: []string{"whsec_%%%"}},
		"ftp":        {URL: "ftp://hooks.example/x", Secrets: []string{webhook.GenerateSecret()}},
		"no host":    {URL: "https:///x", Secrets: []string{webhook.GenerateSecret()}},
	} {
		_, err := c.Send(context.Background(), ep, "d", body)
		f := failure(t, err)
		assert.True(t, f.Permanent, name)
		assert.Equal(t, "invalid_endpoint", f.Code, name)
	}
	// Plain http is test mode only.
	prod := webhook.New(webhook.Config{}, nil)
	_, err := prod.Send(context.Background(), webhook.Endpoint{URL: "http://hooks.example/x", Secrets: []string{webhook.GenerateSecret()}}, "d", body)
	assert.Equal(t, "invalid_endpoint", failure(t, err).Code)
}

// --- SSRF guard -----------------------------------------------------------------

func assertBlocked(t *testing.T, err error, want string) {
	t.Helper()
	var blocked *webhook.BlockedAddressError
	require.ErrorAs(t, err, &blocked)
	if want != "" {
		assert.Equal(t, want, blocked.Addr.String())
	}
	f := failure(t, err)
	assert.True(t, f.Permanent)
	assert.Equal(t, "blocked_address", f.Code)
}

func TestGuardRefusesLoopbackOutsideTestMode(t *testing.T) {
	rcv, srv := startReceiver(t, status(http.StatusOK))
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	prod := webhook.New(webhook.Config{}, nil)

	// "localhost" is resolved first, then refused: the check is on the
	// resolved address, not on the URL text.
	_, err := prod.Send(context.Background(), webhook.Endpoint{
		URL: fmt.Sprintf("https://localhost:%d/hook", port), Secrets: []string{webhook.GenerateSecret()},
	}, "d", body)
	assertBlocked(t, err, "")
	_, err = prod.Send(context.Background(), webhook.Endpoint{
		URL: fmt.Sprintf("https://127.0.0.1:%d/hook", port), Secrets: []string{webhook.GenerateSecret()},
	}, "d", body)
	assertBlocked(t, err, "127.0.0.1")

	assert.Zero(t, rcv.conns.Load(), "no TCP connection may reach the server")
	assert.Empty(t, rcv.got())
}

func TestGuardRefusesPrivateAndMetadataEvenInTestMode(t *testing.T) {
	for _, allowLoopback := range []bool{false, true} {
		c := webhook.New(webhook.Config{AllowLoopback: allowLoopback}, nil)
		for _, target := range []string{"10.0.0.1", "169.254.169.254", "192.168.1.1", "100.64.0.1", "[fd00::1]", "[::ffff:10.0.0.1]"} {
			start := time.Now()
			_, err := c.Send(context.Background(), webhook.Endpoint{
				URL: "https://" + target + "/latest/meta-data", Secrets: []string{webhook.GenerateSecret()},
			}, "d", body)
			assertBlocked(t, err, strings.TrimPrefix(strings.Trim(target, "[]"), "::ffff:"))
			// Refused in the Control hook, before connect(2): no SYN was
			// sent, so there is nothing to time out on.
			assert.Less(t, time.Since(start), time.Second, target)
		}
	}
}

func TestGuardAllowsLoopbackInTestMode(t *testing.T) {
	rcv, srv := startReceiver(t, status(http.StatusOK))
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	_, err := testClient(t).Send(context.Background(), webhook.Endpoint{
		URL: fmt.Sprintf("http://localhost:%d/hook", port), Secrets: []string{webhook.GenerateSecret()},
	}, "d", body)
	require.NoError(t, err)
	assert.Len(t, rcv.got(), 1)
}

func TestGuardCatchesNamesResolvingToPrivateAddresses(t *testing.T) {
	rcv, srv := startReceiver(t, status(http.StatusOK))
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	resolver := providertest.StartDNS(t, map[string][]netip.Addr{
		"rebind.rfd-test":   {netip.MustParseAddr("10.0.0.1")},
		"metadata.rfd-test": {netip.MustParseAddr("169.254.169.254")},
		"loop.rfd-test":     {netip.MustParseAddr("127.0.0.1")},
	})
	dialer := &net.Dialer{Resolver: resolver, Timeout: 2 * time.Second}
	secret := webhook.GenerateSecret()

	test := webhook.New(webhook.Config{AllowLoopback: true}, dialer)
	// The resolver is really used: a name pointing at loopback reaches the
	// test receiver in test mode...
	_, err := test.Send(context.Background(), webhook.Endpoint{URL: fmt.Sprintf("http://loop.rfd-test:%d/", port), Secrets: []string{secret}}, "d", body)
	require.NoError(t, err)
	require.Len(t, rcv.got(), 1)

	// ...while names resolving to private or metadata addresses are refused
	// after resolution, in test mode too.
	_, err = test.Send(context.Background(), webhook.Endpoint{URL: "https://rebind.rfd-test/", Secrets: []string{secret}}, "d", body)
	assertBlocked(t, err, "10.0.0.1")
	_, err = test.Send(context.Background(), webhook.Endpoint{URL: "https://metadata.rfd-test/", Secrets: []string{secret}}, "d", body)
	assertBlocked(t, err, "169.254.169.254")

	// And outside test mode the loopback name is refused as well.
	prod := webhook.New(webhook.Config{}, dialer)
	_, err = prod.Send(context.Background(), webhook.Endpoint{URL: fmt.Sprintf("https://loop.rfd-test:%d/", port), Secrets: []string{secret}}, "d", body)
	assertBlocked(t, err, "127.0.0.1")
	assert.Len(t, rcv.got(), 1)
}

func TestCheckAddr(t *testing.T) {
	blocked := []string{
		"127.0.0.1", "127.1.2.3", "::1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.0.1",
		"169.254.169.254", "fe80::1", "fc00::1", "fd12:3456::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
		"100.64.0.1", "100.127.255.254", "255.255.255.255", "240.0.0.1", "198.18.0.1", "0.1.2.3",
		"::ffff:10.0.0.1", "::ffff:127.0.0.1", "64:ff9b::a00:1", "fec0::1",
	}
	allowed := []string{"8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2001:4860:4860::8888", "64:ff9b::808:808"}
	for _, s := range blocked {
		var e *webhook.BlockedAddressError
		assert.ErrorAs(t, webhook.CheckAddr(netip.MustParseAddr(s), false), &e, s)
	}
	for _, s := range allowed {
		assert.NoError(t, webhook.CheckAddr(netip.MustParseAddr(s), false), s)
	}
	// Test mode opens loopback only.
	assert.NoError(t, webhook.CheckAddr(netip.MustParseAddr("127.0.0.1"), true))
	assert.NoError(t, webhook.CheckAddr(netip.MustParseAddr("::1"), true))
	for _, s := range []string{"10.0.0.1", "169.254.169.254", "192.168.1.1", "fe80::1", "0.0.0.0"} {
		assert.Error(t, webhook.CheckAddr(netip.MustParseAddr(s), true), s)
	}
}

// TestSendRefusesUserInfoAndNumericHosts: delivery refuses what registration
// refuses (ValidateURL is their one syntactic policy): credentials in the
// URL, and hosts that are IPv4 addresses in a non-canonical form, before
// any connection is tried.
func TestSendRefusesUserInfoAndNumericHosts(t *testing.T) {
	rcv, srv := startReceiver(t, status(http.StatusOK))
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	c := testClient(t)
	for _, u := range []string{
		fmt.Sprintf("http://user@127.0.0.1:%d/hook", port),
		fmt.Sprintf("http://user:pw@localhost:%d/hook", port),
		fmt.Sprintf("http://2130706433:%d/hook", port),
		fmt.Sprintf("http://0x7f000001:%d/hook", port),
		fmt.Sprintf("http://0177.0.0.1:%d/hook", port),
		fmt.Sprintf("http://127.1:%d/hook", port),
	} {
		_, err := c.Send(context.Background(), webhook.Endpoint{URL: u, Secrets: []string{webhook.GenerateSecret()}}, "d", body)
		f := failure(t, err)
		assert.True(t, f.Permanent, u)
		assert.Equal(t, "invalid_endpoint", f.Code, u)
		var invalid *webhook.InvalidURLError
		assert.ErrorAs(t, err, &invalid, u)
	}
	assert.Zero(t, rcv.conns.Load(), "no TCP connection may reach the server")
}

// TestCheckDestination: the registration side of the policy judges the
// literal address, or every address the name resolves to, with CheckAddr.
func TestCheckDestination(t *testing.T) {
	resolver := providertest.StartDNS(t, map[string][]netip.Addr{
		"public.rfd-test":        {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("2606:2800:220:1::1")},
		"127.0.0.1.nip.io":       {netip.MustParseAddr("127.0.0.1")},
		"mixed.rfd-test":         {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.1")},
		"metadata.rfd-test":      {netip.MustParseAddr("169.254.169.254")},
		"v6-loop.rfd-test":       {netip.MustParseAddr("::1")},
		"mapped-private.rfd-tst": {netip.MustParseAddr("::ffff:192.168.0.1")},
	})
	ctx := context.Background()
	for _, u := range []string{"https://public.rfd-test/hook", "https://93.184.216.34/hook", "https://[2606:2800:220:1::1]:8443/x", "https://PUBLIC.rfd-test./hook"} {
		got, resolved, err := webhook.CheckDestination(ctx, u, false, resolver)
		require.NoError(t, err, u)
		assert.True(t, resolved, u)
		assert.Equal(t, u, got.String())
	}
	for _, u := range []string{
		"https://127.0.0.1/", "https://[::1]/", "https://[::ffff:127.0.0.1]/", "https://10.1.2.3/", "https://172.16.0.1/",
		"https://192.168.1.1/", "https://169.254.169.254/", "https://[fe80::1%25eth0]/", "https://[64:ff9b::a00:1]/",
		"https://localhost/", "https://localhost./", "https://127.0.0.1.nip.io/", "https://mixed.rfd-test/",
		"https://metadata.rfd-test/", "https://v6-loop.rfd-test/", "https://mapped-private.rfd-tst/",
	} {
		_, _, err := webhook.CheckDestination(ctx, u, false, resolver)
		var blocked *webhook.BlockedAddressError
		assert.ErrorAs(t, err, &blocked, u)
	}
	for _, u := range []string{"http://public.rfd-test/", "https://user@public.rfd-test/", "https://2130706433/", "ftp://public.rfd-test/", "https:public.rfd-test", "https://public.rfd-test:0/", "https://public.rfd-test:99999/"} {
		_, _, err := webhook.CheckDestination(ctx, u, false, resolver)
		var invalid *webhook.InvalidURLError
		assert.ErrorAs(t, err, &invalid, u)
	}
	_, _, err := webhook.CheckDestination(ctx, "https://nowhere.rfd-test/", false, resolver)
	assert.ErrorIs(t, err, webhook.ErrNoSuchHost)

	// Test mode opens loopback, names included, and nothing else.
	_, _, err = webhook.CheckDestination(ctx, "http://localhost:8080/", true, resolver)
	assert.NoError(t, err)
	_, _, err = webhook.CheckDestination(ctx, "http://mixed.rfd-test/", true, resolver)
	assert.Error(t, err)

	// A resolver that does not answer refuses nothing: delivery's guard
	// judges the addresses it connects to.
	silent := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return nil, errors.New("no DNS server")
	}}
	got, resolved, err := webhook.CheckDestination(ctx, "https://public.rfd-test/hook", false, silent)
	require.NoError(t, err)
	assert.False(t, resolved)
	assert.Equal(t, "https://public.rfd-test/hook", got.String())
}
