package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMintDevTokenIsAcceptedByAVerifierWithTheSameSecret(t *testing.T) {
	secret := strings.Repeat("s", 32)
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	tok, err := MintDevToken(DevTokenParams{Secret: secret, Issuer: "rfd-dev", Audience: "rfd-notify", Doctor: "usr-1", TTL: 15 * time.Minute, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{HS256Secret: []byte(secret), Issuer: "rfd-dev", Audience: "rfd-notify", Now: func() time.Time { return now.Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if claims.Subject != "usr-1" {
		t.Fatalf("sub = %q", claims.Subject)
	}
	if got := claims.ExpiresAt.Time; !got.Equal(now.Add(15 * time.Minute)) {
		t.Fatalf("exp = %v", got)
	}

	// Expired: the verifier refuses it.
	late, err := NewVerifier(VerifierConfig{HS256Secret: []byte(secret), Issuer: "rfd-dev", Audience: "rfd-notify", Now: func() time.Time { return now.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := late.Verify(context.Background(), tok); err == nil {
		t.Fatal("an expired dev token was accepted")
	}
}

func TestMintDevTokenRefusesWithoutASecret(t *testing.T) {
	_, err := MintDevToken(DevTokenParams{Issuer: "rfd-dev", Audience: "rfd-notify", Doctor: "usr-1", TTL: time.Minute})
	if !errors.Is(err, ErrNoDevSecret) {
		t.Fatalf("err = %v, want ErrNoDevSecret", err)
	}
	for name, p := range map[string]DevTokenParams{
		"short secret": {Secret: "short", Issuer: "i", Doctor: "d", TTL: time.Minute},
		"no issuer":    {Secret: strings.Repeat("s", 32), Doctor: "d", TTL: time.Minute},
		"no doctor":    {Secret: strings.Repeat("s", 32), Issuer: "i", TTL: time.Minute},
		"too long":     {Secret: strings.Repeat("s", 32), Issuer: "i", Doctor: "d", TTL: 48 * time.Hour},
	} {
		if _, err := MintDevToken(p); err == nil {
			t.Errorf("%s: minted", name)
		}
	}
}
