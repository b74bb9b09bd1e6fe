package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Algorithms doctors' tokens may be signed with. HS256 is added only when
// a development secret is configured; "none" never is.
const (
	AlgRS256 = "RS256"
	AlgES256 = "ES256"
	AlgHS256 = "HS256"
)

// minRSABits is the smallest RSA key accepted.
const minRSABits = 2048

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	PublicKeyFile string
	JWKSURL       string
	JWKSRefresh   time.Duration
	HS256Secret   []byte
	Issuer        string
	Audience      string
	Leeway        time.Duration
	HTTPClient    *http.Client
	MinRefetch    time.Duration
	FetchTimeout  time.Duration
	Now           func() time.Time
}

// Verifier checks doctors' access tokens: the signature with an allowed
// algorithm and a matching key, and iss, aud, exp (required), nbf and iat.
type Verifier struct {
	parser  *jwt.Parser
	static  []crypto.PublicKey
	jwks    *jwksCache
	hmacKey []byte
	now     func() time.Time
	leeway  time.Duration

	// verified remembers tokens whose signature checked out: a portal
	// sends the same token with every request until it expires, and an
	// RS256 check costs more than the rest of a typical request.
	mu       sync.Mutex
	verified map[[sha256.Size]byte]verifiedToken
}

// verifiedToken is a cached verification, good until until.
type verifiedToken struct {
	claims Claims
	until  time.Time
}

const (
	// verifiedTTL bounds how long a verification is reused: a key
	// withdrawn from the JWKS stops working within the JWKS refresh
	// interval plus this.
	verifiedTTL = time.Minute
	// verifiedMax bounds the cache; when full it is emptied.
	verifiedMax = 50000
)

// Claims are the claims the service uses.
type Claims struct {
	jwt.RegisteredClaims
}

// NewVerifier builds a verifier; it loads the PEM file now.
func NewVerifier(c VerifierConfig) (*Verifier, error) {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = 5 * time.Second
	}
	if c.JWKSRefresh <= 0 {
		c.JWKSRefresh = time.Hour
	}
	v := &Verifier{now: c.Now, leeway: c.Leeway, verified: map[[sha256.Size]byte]verifiedToken{}}
	methods := []string{AlgRS256, AlgES256}
	if c.PublicKeyFile != "" {
		keys, err := LoadPublicKeys(c.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("RFD_JWT_PUBLIC_KEY_FILE (--jwt-public-key-file): %w", err)
		}
		v.static = keys
	}
	if c.JWKSURL != "" {
		v.jwks = &jwksCache{url: c.JWKSURL, client: c.HTTPClient, ttl: c.JWKSRefresh, minRefetch: c.MinRefetch,
			timeout: c.FetchTimeout, now: c.Now}
	}
	if len(c.HS256Secret) > 0 {
		v.hmacKey = append([]byte(nil), c.HS256Secret...)
		methods = append(methods, AlgHS256)
	}
	if v.static == nil && v.jwks == nil && v.hmacKey == nil {
		return nil, errors.New("auth: no token key configured")
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(methods),
		jwt.WithIssuer(c.Issuer),
		jwt.WithAudience(c.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(c.Leeway),
		jwt.WithTimeFunc(c.Now),
		jwt.WithStrictDecoding(),
	)
	return v, nil
}

// errKeysUnavailable: the JWKS could not be fetched and no cached key
// matches; the token may well be good, so the caller gets a 503, not a 401.
var errKeysUnavailable = errors.New("token signing keys are unavailable")

// Verify checks token and returns its claims, or an *Error (401, or 503
// when the JWKS cannot be fetched).
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	key := sha256.Sum256([]byte(token))
	now := v.now()
	v.mu.Lock()
	hit, ok := v.verified[key]
	v.mu.Unlock()
	if ok && now.Before(hit.until) {
		return hit.claims, nil
	}
	claims, err := v.verify(ctx, token)
	if err != nil {
		return Claims{}, err
	}
	// Reused until the token expires (exp is required) or verifiedTTL,
	// whichever comes first; an expired token is verified afresh, and
	// refused.
	until := now.Add(verifiedTTL)
	if exp := claims.ExpiresAt.Add(v.leeway); exp.Before(until) {
		until = exp
	}
	v.mu.Lock()
	if len(v.verified) >= verifiedMax {
		clear(v.verified)
	}
	v.verified[key] = verifiedToken{claims: claims, until: until}
	v.mu.Unlock()
	return claims, nil
}

func (v *Verifier) verify(ctx context.Context, token string) (Claims, error) {
	var claims Claims
	_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) { return v.keyFor(ctx, t) })
	if err != nil {
		if errors.Is(err, errKeysUnavailable) {
			return Claims{}, &Error{Status: http.StatusServiceUnavailable, Detail: "the token signing keys cannot be fetched; retry shortly", cause: err}
		}
		return Claims{}, &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Detail: describeTokenError(err), cause: err}
	}
	if claims.Subject == "" {
		return Claims{}, unauthorized("the token has no subject", "invalid_token")
	}
	return claims, nil
}

func describeTokenError(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is malformed"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the token is not meant for this service (aud)"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "the token has an unexpected issuer (iss)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "the token lacks a required claim"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "the token's signature is invalid"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "the token cannot be verified (algorithm or key not accepted)"
	}
	return "the token is invalid"
}

// keyFor picks the keys that may have signed t: the HS256 secret for HS256
// (only when configured), else the public keys of the token's algorithm —
// the PEM file's, and the JWKS key named by kid (or all JWKS keys when the
// token names none). A public key is never used as an HMAC secret.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == AlgHS256 {
		if v.hmacKey == nil {
			return nil, errors.New("HS256 is not accepted")
		}
		return v.hmacKey, nil
	}
	var set jwt.VerificationKeySet
	for _, k := range v.static {
		if keyFits(k, alg) {
			set.Keys = append(set.Keys, k)
		}
	}
	if v.jwks != nil {
		kid, _ := t.Header["kid"].(string)
		keys, err := v.jwks.keys(ctx, kid, alg)
		if err != nil && len(set.Keys) == 0 {
			return nil, err
		}
		for _, k := range keys {
			set.Keys = append(set.Keys, k)
		}
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("no %s key matches the token", alg)
	}
	return set, nil
}

func keyFits(k crypto.PublicKey, alg string) bool {
	switch key := k.(type) {
	case *rsa.PublicKey:
		return alg == AlgRS256
	case *ecdsa.PublicKey:
		return alg == AlgES256 && key.Curve == elliptic.P256()
	}
	return false
}

// LoadPublicKeys reads every public key of a PEM file: PKIX "PUBLIC KEY",
// PKCS#1 "RSA PUBLIC KEY" or "CERTIFICATE" blocks. RSA keys must have at
// least 2048 bits; EC keys must be P-256.
func LoadPublicKeys(path string) ([]crypto.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keys []crypto.PublicKey
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			break
		}
		var key any
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			cert, err = x509.ParseCertificate(block.Bytes)
			if err == nil {
				key = cert.PublicKey
			}
		default:
			continue // private keys and anything else are not ours to read
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s block: %w", block.Type, err)
		}
		if err := checkKey(key); err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no PEM public key", path)
	}
	return keys, nil
}

func checkKey(k any) error {
	switch key := k.(type) {
	case *rsa.PublicKey:
		if key.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits: at least %d required", key.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if key.Curve != elliptic.P256() {
			return fmt.Errorf("EC key on %s: P-256 required (ES256)", key.Curve.Params().Name)
		}
	default:
		return fmt.Errorf("unsupported key type %T (want RSA or EC P-256)", k)
	}
	return nil
}

// jwksCache holds the keys of a JWKS URL. Keys are used for ttl, then
// refreshed in the background while the cached ones keep serving. A token
// naming a kid the cache does not know waits for a refetch — at most one
// fetch per minRefetch, so made-up kids never turn into a flood of requests
// to user management. When a fetch fails, the cached keys keep working.
type jwksCache struct {
	url        string
	client     *http.Client
	ttl        time.Duration
	minRefetch time.Duration
	timeout    time.Duration
	now        func() time.Time

	fetchMu sync.Mutex // one fetch at a time

	mu        sync.RWMutex
	byKid     map[string]jwk
	fetchedAt time.Time
	triedAt   time.Time
	lastErr   error
}

type jwk struct {
	key crypto.PublicKey
	alg string
}

func (c *jwksCache) keys(ctx context.Context, kid, alg string) ([]crypto.PublicKey, error) {
	c.mu.RLock()
	fetched := c.byKid != nil
	_, known := c.byKid[kid]
	stale := fetched && c.now().Sub(c.fetchedAt) >= c.ttl
	c.mu.RUnlock()
	switch {
	case !fetched || (kid != "" && !known):
		c.refresh(ctx)
	case stale:
		if c.fetchMu.TryLock() {
			go func() {
				defer c.fetchMu.Unlock()
				c.fetch(context.Background())
			}()
		}
	}

	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.byKid == nil {
		return nil, fmt.Errorf("%w: %v", errKeysUnavailable, c.lastErr)
	}
	var out []crypto.PublicKey
	for k, key := range c.byKid {
		if kid != "" && k != kid {
			continue
		}
		if key.alg != "" && key.alg != alg {
			continue
		}
		if keyFits(key.key, alg) {
			out = append(out, key.key)
		}
	}
	return out, nil
}

// refresh fetches the set unless a fetch was tried within minRefetch.
func (c *jwksCache) refresh(ctx context.Context) {
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	c.mu.RLock()
	recent := !c.triedAt.IsZero() && c.now().Sub(c.triedAt) < c.minRefetch
	c.mu.RUnlock()
	if recent {
		return
	}
	c.fetch(ctx)
}

// fetch fetches the set; the caller holds fetchMu.
func (c *jwksCache) fetch(ctx context.Context) {
	now := c.now()
	c.mu.Lock()
	c.triedAt = now
	c.mu.Unlock()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	keys, err := fetchJWKS(fctx, c.client, c.url)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.lastErr = err
		return
	}
	c.byKid, c.fetchedAt, c.lastErr = keys, now, nil
}

// maxJWKSBytes bounds a JWKS response.
const maxJWKSBytes = 1 << 20

func fetchJWKS(ctx context.Context, client *http.Client, url string) (map[string]jwk, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, errors.New("JWKS larger than 1 MiB")
	}
	return parseJWKS(body)
}

// parseJWKS reads the RSA and EC P-256 signing keys of a JWK Set (RFC 7517);
// keys of other types or uses are skipped. A key without kid is kept under
// "" and matches tokens that name no kid.
func parseJWKS(body []byte) (map[string]jwk, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	out := map[string]jwk{}
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		var key crypto.PublicKey
		switch k.Kty {
		case "RSA":
			n, err1 := b64int(k.N)
			e, err2 := b64int(k.E)
			if err1 != nil || err2 != nil || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
				continue
			}
			key = &rsa.PublicKey{N: n, E: int(e.Int64())}
		case "EC":
			if k.Crv != "P-256" {
				continue
			}
			xb, err1 := base64.RawURLEncoding.DecodeString(k.X)
			yb, err2 := base64.RawURLEncoding.DecodeString(k.Y)
			if err1 != nil || err2 != nil || len(xb) != 32 || len(yb) != 32 {
				continue
			}
			pk, err := ecdsaP256(xb, yb)
			if err != nil {
				continue
			}
			key = pk
		default:
			continue
		}
		if checkKey(key) != nil {
			continue
		}
		out[k.Kid] = jwk{key: key, alg: k.Alg}
	}
	return out, nil
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("bad base64url integer")
	}
	return new(big.Int).SetBytes(b), nil
}

// ecdsaP256 builds a P-256 public key from its coordinates, refusing points
// not on the curve.
func ecdsaP256(x, y []byte) (*ecdsa.PublicKey, error) {
	point := make([]byte, 0, 65)
	point = append(append(append(point, 4), x...), y...)
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
}
