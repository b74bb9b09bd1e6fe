package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/jobs/poison"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/health"
	"github.com/rfd-notify/rfd/internal/roles"
	"github.com/rfd-notify/rfd/internal/testkit/providertest"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// The API's tests run on the embedded default and on PostgreSQL; the API
// never touches the transport, so Kafka adds nothing here.
var combinations = []string{testenv.SQLiteSQL, testenv.PostgresSQL}

const (
	testIssuer   = "https://users.example/"
	testAudience = "rfd-notify-test"
)

// each runs fn on every combination as parallel subtests.
func each(t *testing.T, fn func(t *testing.T, f *fixture)) {
	t.Helper()
	for _, name := range combinations {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, newFixture(t, name))
		})
	}
}

// fixture is the API over a real database, fed by the real consumers, with
// an RSA key whose public half the API trusts.
type fixture struct {
	t        *testing.T
	env      *testenv.Env
	server   *api.Server
	url      string
	key      *rsa.PrivateKey
	notifier *notify.Notifier
	set      handlers.Set
	// now is the consumers' clock: every row they write carries it.
	now  time.Time
	msgs atomic.Int64
}

var signingKey = mustKey()

func mustKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

// writePublicKey writes k's public key as a PEM file and returns its path.
func writePublicKey(t testing.TB, k *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func jwtConfig(pemPath string) func(*config.Config) {
	return func(c *config.Config) {
		c.JWTPublicKeyFile = pemPath
		c.JWTIssuer = testIssuer
		c.JWTAudience = testAudience
		c.JWTLeeway = 0
	}
}

// generousRateLimits lifts the API's rate limits far above what a test
// sends, so the flow tests (dozens of requests of one doctor in a few
// milliseconds) test their flows; ratelimit_test.go sets low limits.
func generousRateLimits(c *config.Config) {
	c.APIRatePerKey = 1e6
	c.APIRatePerDoctor = 1e6
}

// testHosts are the names the fixture's resolver knows: webhook
// registration resolves hosts, and tests make no network calls.
var testHosts = map[string][]netip.Addr{
	"crm.clinic.example":    {netip.MustParseAddr("93.184.216.34")},
	"clinic.example":        {netip.MustParseAddr("93.184.216.34")},
	"a.example":             {netip.MustParseAddr("93.184.216.34")},
	"hooks.example":         {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("2606:2800:220:1::1")},
	"127.0.0.1.nip.io":      {netip.MustParseAddr("127.0.0.1")},
	"10.0.0.5.nip.io":       {netip.MustParseAddr("10.0.0.5")},
	"rebind.clinic.example": {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("192.168.10.10")},
}

func newFixture(t *testing.T, name string, opts ...func(*config.Config)) *fixture {
	t.Helper()
	env := testenv.New(t, name, append([]func(*config.Config){jwtConfig(writePublicKey(t, signingKey)), generousRateLimits}, opts...)...)
	cfg := env.Config
	env.EnsureTopics(t, cfg.TopicSendNotification)
	f := &fixture{t: t, env: env, key: signingKey, now: time.Now().UTC().Truncate(time.Second)}
	f.notifier = notify.New(env.Outbox, cfg.TopicSendNotification, cfg.PortalURL, f.clock)
	f.set = handlers.Consumers(handlers.Deps{Config: cfg, Inbox: env.Inbox, Outbox: env.Outbox, Notifier: f.notifier, Now: f.clock})
	srv, err := api.NewServer(withServices(t, api.Deps{Config: cfg, DB: env.DB, Logger: env.Logger, Resolver: providertest.StartDNS(t, testHosts)}),
		&health.Checks{}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	f.server, f.url = srv, ts.URL
	return f
}

func (f *fixture) clock() time.Time { return f.now }

// consume hands an inbound event to its real consumer, as the router would.
func (f *fixture) consume(consumer, ceType string, payload any) {
	f.t.Helper()
	body, err := json.Marshal(payload)
	if err != nil {
		f.t.Fatal(err)
	}
	id := fmt.Sprintf("%s-%d", consumer, f.msgs.Add(1))
	m := message.NewMessage(id, body)
	for k, v := range events.CloudEventMetadata(id, ceType, "api-test", f.now) {
		m.Metadata.Set(k, v)
	}
	h, ok := f.set[consumer]
	if !ok {
		f.t.Fatalf("no consumer %s", consumer)
	}
	if err := h.Handle(m); err != nil {
		f.t.Fatalf("%s: %v", consumer, err)
	}
}

func (f *fixture) registerDoctor(ext string) {
	f.t.Helper()
	f.consume(config.ConsumerUserCreated, "rfd.user-created.v1", doctorEvent(ext, "Dr. "+ext, true))
}

func doctorEvent(ext, name string, active bool) map[string]any {
	return map[string]any{
		"external_user_id": ext,
		"user_type":        "referring_doctor",
		"name":             name,
		"licence_number":   "MD-" + ext,
		"specialty":        "Cardiology",
		"clinic":           map[string]any{"id": "CL-1", "name": "Sukhumvit Heart Clinic"},
		"email":            ext + "@clinic.example",
		"phone":            "+66812345678",
		"locale":           "en",
		"time_zone":        "Asia/Bangkok",
		"active":           active,
		"updated_at":       time.Now().UTC().Format(time.RFC3339Nano),
	}
}

// result sends a checkup result event for patient and doctors.
func (f *fixture) result(checkup string, version int, status string, critical bool, patient string, doctors ...string) {
	f.t.Helper()
	refs := []map[string]any{}
	for _, d := range doctors {
		refs = append(refs, map[string]any{"external_user_id": d, "role": "primary"})
	}
	eventType := "result_available"
	if critical {
		eventType = "critical_result"
	}
	f.consume(config.ConsumerCheckupEvents, events.TypeCheckupEvent, map[string]any{
		"event_type":        eventType,
		"checkup_id":        checkup,
		"order_id":          "ORD-" + checkup,
		"patient":           map[string]any{"ref": "PT-" + checkup, "display_name": patient, "birth_year": 1970},
		"referring_doctors": refs,
		"occurred_at":       time.Now().UTC().Format(time.RFC3339),
		"result": map[string]any{
			"version":  version,
			"status":   status,
			"critical": critical,
			"summary":  "Potassium above the reference range.",
			"tests":    []map[string]any{{"code": "K", "name": "Potassium", "value": fmt.Sprintf("6.%d", version), "unit": "mmol/L", "flag": "HH"}},
		},
	})
}

// order sends an order history event.
func (f *fixture) order(order string, seq int, status string, doctors ...string) {
	f.t.Helper()
	refs := []map[string]any{}
	for _, d := range doctors {
		refs = append(refs, map[string]any{"external_user_id": d})
	}
	f.consume(config.ConsumerOrderHistoryEvents, events.TypeOrderHistoryEvent, map[string]any{
		"order_id":          order,
		"sequence":          seq,
		"status":            status,
		"occurred_at":       time.Date(2026, 11, 25, 1, seq, 0, 0, time.UTC).Format(time.RFC3339),
		"patient":           map[string]any{"ref": "PT-" + order},
		"referring_doctors": refs,
		"description":       "Lipid panel",
	})
}

// token issues a doctor's RS256 token for sub, with claims changed by mods.
func (f *fixture) token(sub string, mods ...func(jwt.MapClaims)) string {
	f.t.Helper()
	return signRS256(f.t, f.key, sub, mods...)
}

func signRS256(t testing.TB, key *rsa.PrivateKey, sub string, mods ...func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": testIssuer,
		"aud": testAudience,
		"sub": sub,
		"iat": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for _, m := range mods {
		m(claims)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// problem is an RFC 9457 body as huma writes it.
type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

// problem checks r is a problem+json answer with status and returns it.
func (r response) problem(t testing.TB, status int) problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type %q, want application/problem+json: %s", ct, r.body)
	}
	var p problem
	r.json(t, &p)
	if p.Status != status || p.Title == "" {
		t.Fatalf("problem %+v, want status %d with a title", p, status)
	}
	return p
}

func (p problem) hasLocation(loc string) bool {
	for _, e := range p.Errors {
		if e.Location == loc {
			return true
		}
	}
	return false
}

// do calls the API. body may be nil, a string (sent as is) or a value
// (sent as JSON). headers are name, value pairs.
func (f *fixture) do(method, path, token string, body any, headers ...string) response {
	f.t.Helper()
	return call(f.t, f.url, method, path, token, body, headers...)
}

func call(t testing.TB, base, method, path, token string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// ok checks r has status and decodes it into v (if not nil).
func (r response) ok(t testing.TB, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if v != nil {
		r.json(t, v)
	}
}

func (f *fixture) scalar(query string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.env.DB.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (f *fixture) str(query string, args ...any) string {
	f.t.Helper()
	var s string
	if err := f.env.DB.QueryRowContext(context.Background(), query, args...).Scan(&s); err != nil {
		f.t.Fatalf("%s: %v", query, err)
	}
	return s
}

// notificationIDs lists a doctor's notification ids, newest first.
func (f *fixture) notificationIDs(ext string, where string) []string {
	f.t.Helper()
	q := `SELECT n.id FROM notifications n JOIN doctors d ON d.id = n.doctor_id WHERE d.external_user_id = ?`
	if where != "" {
		q += " AND " + where
	}
	rows, err := f.env.DB.QueryContext(context.Background(), q+" ORDER BY n.seq DESC", ext)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

// withServices completes d with the services the API receives from the
// roles, built from d's Config and DB the way the roles build them: the
// authenticator (unless d has one), the outbox of the configured transport,
// the notifier and the poison service, on d's clock.
func withServices(t testing.TB, d api.Deps) api.Deps {
	t.Helper()
	logger := d.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	if d.Auth == nil {
		authn, err := auth.New(d.Config, d.DB, auth.WithLogger(logger), auth.WithClock(now))
		if err != nil {
			t.Fatal(err)
		}
		d.Auth = authn
	}
	ps, err := roles.NewSQLPubSub(d.DB, d.Config, logger)
	if err != nil {
		t.Fatal(err)
	}
	d.Outbox = roles.NewOutbox(d.Config, ps)
	d.Notifier = notify.New(d.Outbox, d.Config.TopicSendNotification, d.Config.PortalURL, now)
	d.Poison = poison.New(d.DB, d.Outbox, now)
	return d
}
