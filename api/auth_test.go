package api_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/platform/config"
)

// TestDoctorAuthentication: every way a doctor's token can be wrong is a
// 401 problem+json with a Bearer challenge; an inactive doctor is 403.
func TestDoctorAuthentication(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-a")
		f.consume(config.ConsumerUserCreated, "rfd.user-created.v1", doctorEvent("doc-gone", "Dr. Gone", false))

		good := f.token("doc-a")
		f.do(http.MethodGet, "/v1/me", good, nil).ok(t, http.StatusOK, nil)
		// Every doctor operation is behind the same check, the stream included.
		for _, path := range []string{"/v1/notifications", "/v1/dashboard", "/v1/orders", "/v1/notifications/stream"} {
			f.do(http.MethodGet, path, "", nil).problem(t, http.StatusUnauthorized)
			f.do(http.MethodGet, path, f.token("doc-a", func(c jwt.MapClaims) { c["aud"] = "x" }), nil).problem(t, http.StatusUnauthorized)
		}

		pubDER, err := x509.MarshalPKIXPublicKey(&f.key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

		cases := []struct {
			name   string
			header string
			status int
		}{
			{"missing", "", http.StatusUnauthorized},
			{"not bearer", "Basic ZG9jLWE6cGFzc3dvcmQ=", http.StatusUnauthorized},
			{"empty bearer", "Bearer ", http.StatusUnauthorized},
			{"garbage", "Bearer not-a-jwt", http.StatusUnauthorized},
			{"expired", "Bearer " + f.token("doc-a", func(c jwt.MapClaims) {
				c["exp"] = time.Now().Add(-time.Minute).Unix()
				c["iat"] = time.Now().Add(-time.Hour).Unix()
			}), http.StatusUnauthorized},
			{"no exp", "Bearer " + f.token("doc-a", func(c jwt.MapClaims) { delete(c, "exp") }), http.StatusUnauthorized},
			{"not yet valid", "Bearer " + f.token("doc-a", func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), http.StatusUnauthorized},
			{"wrong audience", "Bearer " + f.token("doc-a", func(c jwt.MapClaims) { c["aud"] = "another-service" }), http.StatusUnauthorized},
			{"no audience", "Bearer " + f.token("doc-a", func(c jwt.MapClaims) { delete(c, "aud") }), http.StatusUnauthorized},
			{"wrong issuer", "Bearer " + f.token("doc-a", func(c jwt.MapClaims) { c["iss"] = "https://evil.example/" }), http.StatusUnauthorized},
			{"no subject", "Bearer " + f.token(""), http.StatusUnauthorized},
			{"alg none", "Bearer " + noneToken(t, "doc-a"), http.StatusUnauthorized},
			{"tampered payload", "Bearer " + tamper(t, good, "doc-gone"), http.StatusUnauthorized},
			{"tampered signature", "Bearer " + good[:len(good)-4] + flip(good[len(good)-4:]), http.StatusUnauthorized},
			{"other key", "Bearer " + signRS256(t, mustKey(), "doc-a"), http.StatusUnauthorized},
			{"HS256 not enabled", "Bearer " + hs256(t, []byte("a-development-secret-of-32-bytes!"), "doc-a"), http.StatusUnauthorized},
			{"HS256 keyed with the public key", "Bearer " + hs256(t, pubPEM, "doc-a"), http.StatusUnauthorized},
			{"unknown doctor", "Bearer " + f.token("doc-nobody"), http.StatusUnauthorized},
			{"API key on a doctor operation", "Bearer rfdk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", http.StatusUnauthorized},
			{"inactive doctor", "Bearer " + f.token("doc-gone"), http.StatusForbidden},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := f.do(http.MethodGet, "/v1/me", "", nil, "Authorization", c.header)
				p := r.problem(t, c.status)
				if p.Detail == "" {
					t.Errorf("problem without detail: %s", r.body)
				}
				if c.status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
				}
				if strings.Contains(string(r.body), "Dr. doc-a") {
					t.Errorf("refusal leaks the profile: %s", r.body)
				}
			})
		}
	})
}

func noneToken(t *testing.T, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": sub, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hs256(t *testing.T, secret []byte, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": sub, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tamper replaces the token's subject, keeping its signature.
func tamper(t *testing.T, token, sub string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = sub
	raw, _ = json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

func flip(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

// TestHS256OnlyWhenEnabled: with the development secret set, HS256 tokens
// signed with it are accepted, and RS256 ones still are.
func TestHS256OnlyWhenEnabled(t *testing.T) {
	secret := "a-development-secret-of-32-bytes!"
	f := newFixture(t, combinations[0], func(c *config.Config) { c.JWTHS256Secret = secret })
	f.registerDoctor("doc-a")
	f.do(http.MethodGet, "/v1/me", hs256(t, []byte(secret), "doc-a"), nil).ok(t, http.StatusOK, nil)
	f.do(http.MethodGet, "/v1/me", f.token("doc-a"), nil).ok(t, http.StatusOK, nil)
	f.do(http.MethodGet, "/v1/me", hs256(t, []byte(secret+"x"), "doc-a"), nil).problem(t, http.StatusUnauthorized)
}

// TestAPIKeys: keys are shown once and stored hashed; a key without the
// operation's scope is 403; revoked or unknown keys and doctors' tokens are
// 401 on integrator operations.
func TestAPIKeys(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-a")
		ctx := context.Background()
		keys := f.server.Auth().APIKeys()
		reader, k, err := keys.Create(ctx, "crm integration", []string{auth.ScopeDoctorsRead}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(reader, auth.APIKeyPrefix) || len(reader) < 40 {
			t.Fatalf("key %q", reader)
		}
		if n := f.scalar(`SELECT count(*) FROM api_keys WHERE hash = ? OR prefix = ? OR name = ?`, reader, reader, reader); n != 0 {
			t.Fatal("the key itself is stored")
		}
		writer, _, err := keys.Create(ctx, "event feed", []string{auth.ScopeEventsCheckup}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := keys.Create(ctx, "bad", []string{"everything"}, nil); err == nil {
			t.Fatal("unknown scope accepted")
		}

		var d struct {
			ExternalUserID string `json:"external_user_id"`
		}
		f.do(http.MethodGet, "/v1/doctors/doc-a", "", nil, "X-API-Key", reader).ok(t, http.StatusOK, &d)
		if d.ExternalUserID != "doc-a" {
			t.Fatalf("doctor %+v", d)
		}
		f.do(http.MethodGet, "/v1/doctors/doc-a", reader, nil).ok(t, http.StatusOK, nil)
		f.do(http.MethodGet, "/v1/doctors/nobody", reader, nil).problem(t, http.StatusNotFound)

		p := f.do(http.MethodGet, "/v1/doctors/doc-a", writer, nil).problem(t, http.StatusForbidden)
		if !strings.Contains(p.Detail, auth.ScopeDoctorsRead) {
			t.Errorf("403 does not name the scope: %+v", p)
		}
		f.do(http.MethodGet, "/v1/doctors/doc-a", "", nil).problem(t, http.StatusUnauthorized)
		f.do(http.MethodGet, "/v1/doctors/doc-a", "rfdk_unknownunknownunknownunknownunknown1234", nil).problem(t, http.StatusUnauthorized)
		f.do(http.MethodGet, "/v1/doctors/doc-a", f.token("doc-a"), nil).problem(t, http.StatusUnauthorized)

		if ok, err := keys.Revoke(ctx, k.ID); err != nil || !ok {
			t.Fatalf("revoke: %v %v", ok, err)
		}
		f.do(http.MethodGet, "/v1/doctors/doc-a", reader, nil).problem(t, http.StatusUnauthorized)

		past := time.Now().Add(-time.Minute)
		expired, _, err := keys.Create(ctx, "old", []string{auth.ScopeDoctorsRead}, &past)
		if err != nil {
			t.Fatal(err)
		}
		f.do(http.MethodGet, "/v1/doctors/doc-a", expired, nil).problem(t, http.StatusUnauthorized)
	})
}
