package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrNoDevSecret is returned by MintDevToken when no development secret
// (RFD_JWT_HS256_SECRET) is configured: a server without one refuses HS256
// tokens, so minting one would only produce a token that fails.
var ErrNoDevSecret = errors.New("no development token secret is configured: set RFD_JWT_HS256_SECRET (at least 32 bytes) and RFD_JWT_ISSUER on the server and here")

// DevTokenMaxTTL is the longest lifetime MintDevToken gives a token: dev
// tokens are for trying the API, not for running clients.
const DevTokenMaxTTL = 24 * time.Hour

// DevTokenParams are what a development doctor token says.
type DevTokenParams struct {
	Secret   string // RFD_JWT_HS256_SECRET
	Issuer   string // RFD_JWT_ISSUER
	Audience string // RFD_JWT_AUDIENCE
	Doctor   string // the doctor's external user id (sub)
	TTL      time.Duration
	Now      time.Time
}

// MintDevToken signs an HS256 doctor token that a server configured with
// the same secret, issuer and audience accepts. It is the development
// stand-in for user management's RS256/ES256 tokens.
func MintDevToken(p DevTokenParams) (string, error) {
	if p.Secret == "" {
		return "", ErrNoDevSecret
	}
	if len(p.Secret) < 32 {
		return "", fmt.Errorf("RFD_JWT_HS256_SECRET must be at least 32 bytes, got %d", len(p.Secret))
	}
	if strings.TrimSpace(p.Issuer) == "" {
		return "", errors.New("RFD_JWT_ISSUER must be set: the server refuses tokens without the issuer it is configured with")
	}
	if strings.TrimSpace(p.Doctor) == "" {
		return "", errors.New("the doctor's external user id is required")
	}
	if p.TTL <= 0 || p.TTL > DevTokenMaxTTL {
		return "", fmt.Errorf("the token lifetime must be between 1s and %s, got %s", DevTokenMaxTTL, p.TTL)
	}
	if p.Now.IsZero() {
		p.Now = time.Now()
	}
	claims := jwt.RegisteredClaims{
		Issuer:    p.Issuer,
		Subject:   p.Doctor,
		Audience:  jwt.ClaimStrings{p.Audience},
		IssuedAt:  jwt.NewNumericDate(p.Now),
		NotBefore: jwt.NewNumericDate(p.Now),
		ExpiresAt: jwt.NewNumericDate(p.Now.Add(p.TTL)),
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(p.Secret))
	if err != nil {
		return "", fmt.Errorf("sign dev token: %w", err)
	}
	return signed, nil
}
