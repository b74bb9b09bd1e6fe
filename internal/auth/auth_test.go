package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

const (
	iss = "https://users.example/"
	aud = "rfd-notify"
)

var (
	rsaKey  = genRSA(2048)
	rsaKey2 = genRSA(2048)
	ecKey   = genEC(elliptic.P256())
)

func genRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func genEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func sign(t *testing.T, m jwt.SigningMethod, key any, kid, sub string, mods ...func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{"iss": iss, "aud": aud, "sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	for _, f := range mods {
		f(c)
	}
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	raw, err := k.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:65])}
}

// jwksServer serves a JWK set the test can change, counting fetches.
type jwksServer struct {
	mu      sync.Mutex
	keys    []map[string]any
	down    bool
	fetches atomic.Int32
	*httptest.Server
}

func newJWKS(t *testing.T, keys ...map[string]any) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(down bool, keys ...map[string]any) {
	s.mu.Lock()
	s.down, s.keys = down, keys
	s.mu.Unlock()
}

func verifier(t *testing.T, c auth.VerifierConfig) *auth.Verifier {
	t.Helper()
	c.Issuer, c.Audience = iss, aud
	v, err := auth.NewVerifier(c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func status(err error) int {
	if err == nil {
		return 200
	}
	return auth.Status(err)
}

func TestJWKS(t *testing.T) {
	srv := newJWKS(t, rsaJWK("r1", &rsaKey.PublicKey), ecJWK("e1", &ecKey.PublicKey))
	now := time.Now()
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	v := verifier(t, auth.VerifierConfig{JWKSURL: srv.URL, JWKSRefresh: time.Hour, MinRefetch: time.Minute,
		Now: func() time.Time { return *clock.Load() }})
	ctx := context.Background()

	cases := []struct {
		name  string
		token string
		want  int
	}{
		{"RS256 by kid", sign(t, jwt.SigningMethodRS256, rsaKey, "r1", "doc"), 200},
		{"ES256 by kid", sign(t, jwt.SigningMethodES256, ecKey, "e1", "doc"), 200},
		{"RS256 without kid", sign(t, jwt.SigningMethodRS256, rsaKey, "", "doc"), 200},
		{"kid of the wrong key type", sign(t, jwt.SigningMethodRS256, rsaKey, "e1", "doc"), 401},
		{"signed by an unknown key", sign(t, jwt.SigningMethodRS256, rsaKey2, "r1", "doc"), 401},
		{"RS384 not accepted", sign(t, jwt.SigningMethodRS384, rsaKey, "r1", "doc"), 401},
		{"HS256 not enabled", sign(t, jwt.SigningMethodHS256, []byte("a-development-secret-of-32-bytes!"), "r1", "doc"), 401},
	}
	for _, c := range cases {
		if _, err := v.Verify(ctx, c.token); status(err) != c.want {
			t.Errorf("%s: %v, want %d", c.name, err, c.want)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1 (cached)", n)
	}

	// Rotation: a new kid is fetched at once...
	srv.set(false, rsaJWK("r2", &rsaKey2.PublicKey))
	later := now.Add(2 * time.Minute)
	clock.Store(&later)
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rsaKey2, "r2", "doc")); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	// ...but made-up kids do not hammer user management: at most one
	// fetch per minimum interval.
	madeUp := func() {
		for range 5 {
			if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rsaKey2, "made-up", "doc")); status(err) != 401 {
				t.Fatalf("unknown kid: %v", err)
			}
		}
	}
	madeUp()
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2 (the first, the rotation; made-up kids within a minute of it fetch nothing)", n)
	}
	later = later.Add(2 * time.Minute)
	clock.Store(&later)
	madeUp()
	if n := srv.fetches.Load(); n != 3 {
		t.Errorf("%d fetches, want 3 (one more for five made-up kids)", n)
	}

	// An outage keeps the cached keys working.
	srv.set(true)
	stale := later.Add(2 * time.Hour)
	clock.Store(&stale)
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rsaKey2, "r2", "doc", func(c jwt.MapClaims) {
		c["exp"] = stale.Add(time.Hour).Unix()
		c["iat"] = stale.Unix()
	})); err != nil {
		t.Errorf("cached key during an outage: %v", err)
	}
}

func TestJWKSUnavailable(t *testing.T) {
	srv := newJWKS(t)
	srv.set(true)
	v := verifier(t, auth.VerifierConfig{JWKSURL: srv.URL})
	_, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, rsaKey, "r1", "doc"))
	if status(err) != http.StatusServiceUnavailable {
		t.Fatalf("JWKS down, nothing cached: %v, want 503", err)
	}
}

func writePEM(t *testing.T, blocks ...*pem.Block) string {
	t.Helper()
	var b []byte
	for _, bl := range blocks {
		b = append(b, pem.EncodeToMemory(bl)...)
	}
	p := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pkixPEM(t *testing.T, k any) *pem.Block {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "PUBLIC KEY", Bytes: der}
}

func TestPEMKeys(t *testing.T) {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "users"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey.PublicKey, rsaKey2)
	if err != nil {
		t.Fatal(err)
	}
	path := writePEM(t,
		&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)},
		&pem.Block{Type: "CERTIFICATE", Bytes: certDER},
	)
	pemBytes, _ := os.ReadFile(path)
	v := verifier(t, auth.VerifierConfig{PublicKeyFile: path, HS256Secret: []byte("a-development-secret-of-32-bytes!")})
	ctx := context.Background()
	for name, c := range map[string]struct {
		tok  string
		want int
	}{
		"PKCS#1 RSA key":                  {sign(t, jwt.SigningMethodRS256, rsaKey, "", "doc"), 200},
		"certificate's EC key":            {sign(t, jwt.SigningMethodES256, ecKey, "any-kid", "doc"), 200},
		"HS256 with the secret":           {sign(t, jwt.SigningMethodHS256, []byte("a-development-secret-of-32-bytes!"), "", "doc"), 200},
		"HS256 keyed with the public PEM": {sign(t, jwt.SigningMethodHS256, pemBytes, "", "doc"), 401},
		"other RSA key":                   {sign(t, jwt.SigningMethodRS256, rsaKey2, "", "doc"), 401},
		"wrong audience": {sign(t, jwt.SigningMethodRS256, rsaKey, "", "doc", func(c jwt.MapClaims) {
			c["aud"] = []string{"other", "another"}
		}), 401},
		"audience among several": {sign(t, jwt.SigningMethodRS256, rsaKey, "", "doc", func(c jwt.MapClaims) {
			c["aud"] = []string{"other", aud}
		}), 200},
	} {
		if _, err := v.Verify(ctx, c.tok); status(err) != c.want {
			t.Errorf("%s: %v, want %d", name, err, c.want)
		}
	}

	for name, block := range map[string]*pem.Block{
		"RSA 1024":  pkixPEM(t, &genRSA(1024).PublicKey),
		"EC P-384":  pkixPEM(t, &genEC(elliptic.P384()).PublicKey),
		"not a key": {Type: "PUBLIC KEY", Bytes: []byte("nonsense")},
	} {
		if _, err := auth.NewVerifier(auth.VerifierConfig{PublicKeyFile: writePEM(t, block), Issuer: iss, Audience: aud}); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := auth.NewVerifier(auth.VerifierConfig{PublicKeyFile: writePEM(t, &pem.Block{Type: "PRIVATE KEY", Bytes: []byte("x")}), Issuer: iss, Audience: aud}); err == nil ||
		!strings.Contains(err.Error(), "RFD_JWT_PUBLIC_KEY_FILE") {
		t.Errorf("file without public key: %v", err)
	}
}

// TestDoctorFromRequest is the plain http.Handler path (the SSE stream):
// Authenticator.Doctor resolves the token's subject to the doctor's row,
// and WriteError answers refusals as problem+json.
func TestDoctorFromRequest(t *testing.T) {
	key := filepath.Join(t.TempDir(), "k.pem")
	if err := os.WriteFile(key, pem.EncodeToMemory(pkixPEM(t, &rsaKey.PublicKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := testenv.New(t, testenv.SQLiteSQL, func(c *config.Config) {
		c.JWTPublicKeyFile, c.JWTIssuer, c.JWTAudience = key, iss, aud
	})
	now := time.Now().UTC()
	for _, d := range []struct {
		id, ext string
		active  bool
	}{{"d1", "ext-1", true}, {"d2", "ext-2", false}} {
		if _, err := env.DB.ExecContext(context.Background(), `INSERT INTO doctors (id, external_user_id, name, active, profile_version, created_at, updated_at)
VALUES (?, ?, 'Dr. Test', ?, ?, ?, ?)`, d.id, d.ext, d.active, now, now, now); err != nil {
			t.Fatal(err)
		}
	}
	a, err := auth.New(env.Config, env.DB)
	if err != nil {
		t.Fatal(err)
	}
	req := func(h string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/v1/notifications/stream", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		return r
	}
	doc, err := a.Doctor(req("Bearer " + sign(t, jwt.SigningMethodRS256, rsaKey, "", "ext-1")))
	if err != nil || doc.ID != "d1" {
		t.Fatalf("doctor %+v, %v", doc, err)
	}
	for h, want := range map[string]int{
		"": 401, "Bearer " + sign(t, jwt.SigningMethodRS256, rsaKey, "", "ext-2"): 403,
		"Bearer " + sign(t, jwt.SigningMethodRS256, rsaKey, "", "ext-3"): 401,
	} {
		_, err := a.Doctor(req(h))
		var ae *auth.Error
		if !errors.As(err, &ae) || ae.Status != want {
			t.Errorf("%q: %v, want %d", h, err, want)
			continue
		}
		w := httptest.NewRecorder()
		auth.WriteError(w, err)
		if w.Code != want || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("WriteError: %d %q", w.Code, w.Header().Get("Content-Type"))
		}
		if want == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer realm=") {
			t.Errorf("challenge %q", w.Header().Get("WWW-Authenticate"))
		}
		var p struct {
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != want || p.Detail == "" {
			t.Errorf("problem %s", w.Body)
		}
	}
	ctx := auth.WithDoctor(context.Background(), doc)
	if d, ok := auth.DoctorFromContext(ctx); !ok || d.ID != "d1" {
		t.Error("DoctorFromContext")
	}
	if _, ok := auth.DoctorFromContext(context.Background()); ok {
		t.Error("a doctor in an empty context")
	}

	// With the database gone, authentication is 503, not 401 or 500.
	_ = env.DB.Close()
	if _, err := a.Doctor(req("Bearer " + sign(t, jwt.SigningMethodRS256, rsaKey, "", "ext-1"))); status(err) != http.StatusServiceUnavailable {
		t.Errorf("database closed: %v, want 503", err)
	}
}

func TestJWTConfig(t *testing.T) {
	base, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*config.Config){
		"RFD_JWT_ISSUER": func(c *config.Config) { c.JWTJWKSURL = "https://users.example/jwks" },
		"RFD_JWT_AUDIENCE": func(c *config.Config) {
			c.JWTJWKSURL, c.JWTIssuer, c.JWTAudience = "https://users.example/jwks", iss, ""
		},
		"RFD_JWT_JWKS_URL":     func(c *config.Config) { c.JWTJWKSURL, c.JWTIssuer = "http://users.example/jwks", iss },
		"RFD_JWT_HS256_SECRET": func(c *config.Config) { c.JWTHS256Secret, c.JWTIssuer = "short", iss },
		"RFD_JWT_LEEWAY":       func(c *config.Config) { c.JWTLeeway = time.Hour },
		"RFD_JWT_JWKS_REFRESH": func(c *config.Config) { c.JWTJWKSRefresh = 0 },
	}
	for name, mod := range cases {
		c := base
		mod(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	c := base
	c.JWTJWKSURL, c.JWTIssuer = "http://127.0.0.1:8081/jwks", iss
	if err := c.Validate(); err != nil {
		t.Errorf("loopback http JWKS: %v", err)
	}
	if err := base.Validate(); err != nil || base.JWTConfigured() {
		t.Errorf("defaults: %v, configured %v", err, base.JWTConfigured())
	}
}

// TestVerifiedTokensAreReusedUntilTheyExpire: a verification is cached
// (the same token verifies again after its key is rotated out of the JWKS),
// but never past the token's expiry.
func TestVerifiedTokensAreReusedUntilTheyExpire(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	start := time.Now()
	clock.Store(&start)
	at := func(d time.Duration) { t2 := start.Add(d); clock.Store(&t2) }
	srv := newJWKS(t, rsaJWK("k1", &rsaKey.PublicKey))
	v := verifier(t, auth.VerifierConfig{JWKSURL: srv.URL, JWKSRefresh: 10 * time.Second, Now: func() time.Time { return *clock.Load() }})
	ctx := context.Background()
	tok := sign(t, jwt.SigningMethodRS256, rsaKey, "k1", "doc", func(c jwt.MapClaims) {
		c["exp"] = start.Add(90 * time.Second).Unix()
		c["iat"] = start.Unix() // the verifier's clock, not the wall clock: a second's tick would make it "used before issued"
	})
	if c, err := v.Verify(ctx, tok); err != nil || c.Subject != "doc" {
		t.Fatalf("first verification: %v %v", c.Subject, err)
	}
	srv.set(false, rsaJWK("k2", &rsaKey2.PublicKey)) // k1 is rotated out: only the cache can accept the token now
	at(30 * time.Second)
	if c, err := v.Verify(ctx, tok); err != nil || c.Subject != "doc" {
		t.Fatalf("within the cache's minute: %v %v", c.Subject, err)
	}
	at(91 * time.Second)
	if _, err := v.Verify(ctx, tok); status(err) != 401 {
		t.Fatalf("cached token past its exp: %v, want 401", err)
	}

	// A token that expires within the cache's minute: a fresh verifier and
	// key set, the clock back at the start.
	at(0)
	v = verifier(t, auth.VerifierConfig{JWKSURL: newJWKS(t, rsaJWK("k1", &rsaKey.PublicKey)).URL, Now: func() time.Time { return *clock.Load() }})
	short := sign(t, jwt.SigningMethodRS256, rsaKey, "k1", "doc", func(c jwt.MapClaims) {
		c["exp"] = start.Add(70 * time.Second).Unix()
		c["iat"] = start.Unix()
	})
	if _, err := v.Verify(ctx, short); err != nil {
		t.Fatalf("short-lived token: %v", err)
	}
	at(75 * time.Second)
	if _, err := v.Verify(ctx, short); status(err) != 401 {
		t.Fatalf("cached token past its exp: %v, want 401", err)
	}
}
