package api

import (
	"regexp"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// withheld stands for what an error does not repeat.
const withheld = "(withheld)"

// withholdValues is a response transformer that keeps request data out of
// every problem+json body. huma echoes the offending value of a validation
// error in errors[].value, and for a body it cannot decode that value is
// the whole body: a sendNotification with one bad field would send the
// patient's name, reference, test and result back, into whatever logs the
// caller's HTTP client keeps. So no error carries a value, messages lose
// the value where they quote it, and a location names only what looks like
// a field name (an unknown property's name comes from the caller and could
// be data). The location and the message still say what is wrong.
func withholdValues(_ huma.Context, _ string, v any) (any, error) {
	em, ok := v.(*huma.ErrorModel)
	if !ok || len(em.Errors) == 0 {
		return v, nil
	}
	// A copy: the model may be a shared value (a package-level error).
	out := *em
	out.Errors = make([]*huma.ErrorDetail, 0, len(em.Errors))
	for _, d := range em.Errors {
		if d == nil {
			continue
		}
		out.Errors = append(out.Errors, &huma.ErrorDetail{
			Location: withholdLocation(d.Location),
			Message:  withholdMessage(d),
		})
	}
	return &out, nil
}

// fieldSegment is a location segment that may be shown: a field name in
// the API's style, or an array index.
var fieldSegment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,63}(\[[0-9]{1,9}\])*$`)

// withholdLocation replaces the segments of loc ("body.data.patient_name",
// "body.items[3]") that do not look like field names.
func withholdLocation(loc string) string {
	if loc == "" {
		return ""
	}
	segs := strings.Split(loc, ".")
	for i, s := range segs {
		if !fieldSegment.MatchString(s) {
			segs[i] = withheld
		}
	}
	return strings.Join(segs, ".")
}

// withholdMessage is d's message without d's value. Messages that come
// from a decoder rather than from the schema (a date-time that does not
// parse, a body that does not decode) quote the input: those are replaced.
func withholdMessage(d *huma.ErrorDetail) string {
	msg := d.Message
	if s := valueText(d.Value); s != "" && strings.Contains(msg, s) {
		msg = strings.ReplaceAll(msg, s, withheld)
	}
	switch {
	case strings.Contains(msg, "parsing time"):
		return "expected a date-time (RFC 3339)"
	case d.Location == "body" && strings.ContainsAny(msg, "\"`"):
		// Decoding the body into the operation's types failed; the
		// decoder's text quotes what it could not decode.
		return "the body does not match the operation's schema"
	}
	return msg
}

// valueText is how a string value would appear in a message; "" for
// other values (numbers and booleans are not quoted by the messages, and
// replacing them would mangle the schema's bounds the messages state) and
// for strings too short to find safely.
func valueText(v any) string {
	s, ok := v.(string)
	if !ok || len(s) < 4 {
		return ""
	}
	return s
}
