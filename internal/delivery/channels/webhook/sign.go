// Package webhook delivers signed webhooks to integrators following the
// Standard Webhooks specification (https://www.standardwebhooks.com), behind
// an SSRF guard.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every signing secret: "whsec_" + base64(key).
const SecretPrefix = "whsec_"

// Standard Webhooks header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// GenerateSecret returns a new signing secret: "whsec_" + base64 of 32
// random bytes.
func GenerateSecret() string {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		// crypto/rand.Read does not fail on supported platforms (Go 1.24+).
		panic("webhook: crypto/rand: " + err.Error())
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// decodeSecret returns the HMAC key of a "whsec_<base64>" secret. The
// prefix is optional, as in the reference libraries.
func decodeSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("webhook: secret is not base64: %w", err)
	}
	if len(key) == 0 {
		return nil, errors.New("webhook: empty secret")
	}
	return key, nil
}

// Sign returns the Standard Webhooks signature "v1,<base64 HMAC-SHA256(key,
// msgID + "." + unix seconds + "." + body)>".
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	if msgID == "" {
		return "", errors.New("webhook: empty message id")
	}
	key, err := decodeSecret(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// Headers returns the three Standard Webhooks headers for one attempt:
// webhook-id is msgID (the delivery id: stable across retries, so the
// receiver can de-duplicate), webhook-timestamp is ts in unix seconds, and
// webhook-signature holds one space-separated "v1,..." signature per secret.
// During a rotation pass both the current and the previous secret, so
// receivers still on the previous one keep verifying.
func Headers(secrets []string, msgID string, ts time.Time, body []byte) (http.Header, error) {
	if len(secrets) == 0 {
		return nil, errors.New("webhook: no signing secret")
	}
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, msgID, ts, body)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, sig)
	}
	h := http.Header{}
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
	return h, nil
}
