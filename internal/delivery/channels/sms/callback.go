package sms

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net"
	"net/url"
	"sort"
	"strings"
)

// SignatureHeader is the header Twilio signs its callbacks with.
const SignatureHeader = "X-Twilio-Signature"

// ValidateSignature reports whether signature (the X-Twilio-Signature header)
// is Twilio's signature of a callback: base64(HMAC-SHA1(authToken, fullURL
// followed by every POST parameter name, sorted, each immediately followed
// by its value)). fullURL is the URL exactly as Twilio requested it,
// including the query string (our "?d=<delivery id>").
//
// Like Twilio's own helper libraries, it also accepts the signature computed
// over the URL with the default port added or any explicit port removed,
// because what Twilio signs depends on how the URL was configured and what a
// proxy in front of us reports. The comparison is constant-time.
func ValidateSignature(authToken, fullURL string, params url.Values, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	valid := false
	for _, u := range urlVariants(fullURL) {
		// No early exit: keep the time independent of which variant matched.
		if hmac.Equal([]byte(computeSignature(authToken, u, params)), []byte(signature)) {
			valid = true
		}
	}
	return valid
}

func computeSignature(authToken, fullURL string, params url.Values) string {
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)

	var b strings.Builder
	b.WriteString(fullURL)
	for _, name := range names {
		// A repeated parameter contributes each of its values, sorted.
		values := append([]string(nil), params[name]...)
		sort.Strings(values)
		for _, v := range values {
			b.WriteString(name)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// urlVariants returns raw, raw with the scheme's default port added (when it
// has no port) and raw without its port (when it has one).
func urlVariants(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return out
	}
	if port := u.Port(); port != "" {
		v := *u
		v.Host = u.Hostname()
		if strings.Contains(v.Host, ":") { // IPv6 literal
			v.Host = "[" + v.Host + "]"
		}
		out = append(out, v.String())
	} else {
		def := map[string]string{"https": "443", "http": "80"}[u.Scheme]
		if def != "" {
			v := *u
			v.Host = net.JoinHostPort(u.Hostname(), def)
			out = append(out, v.String())
		}
	}
	return out
}

// Our delivery statuses, as returned by MapStatus.
const (
	StatusQueued      = "queued"
	StatusSending     = "sending"
	StatusSent        = "sent"
	StatusDelivered   = "delivered"
	StatusUndelivered = "undelivered"
	StatusFailed      = "failed"
)

// MapStatus maps a Twilio MessageStatus to our delivery status and whether
// it is final (no further callback will change it). "sent" is not final: a
// "delivered" or "undelivered" may follow when the carrier reports back.
// An unknown status (including the inbound-only "receiving"/"received")
// returns ("", false) and should be ignored.
func MapStatus(twilioStatus string) (ourStatus string, final bool) {
	switch strings.ToLower(strings.TrimSpace(twilioStatus)) {
	case "accepted", "scheduled", "queued":
		return StatusQueued, false
	case "sending":
		return StatusSending, false
	case "sent":
		return StatusSent, false
	case "delivered", "read": // "read" (WhatsApp/RCS) implies delivered
		return StatusDelivered, true
	case "undelivered":
		return StatusUndelivered, true
	case "failed", "canceled":
		return StatusFailed, true
	}
	return "", false
}
