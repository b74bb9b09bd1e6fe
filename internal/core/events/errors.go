package events

import (
	"fmt"
	"regexp"
	"strings"
)

// ValidationError says that a payload is JSON but breaks its contract. Field
// is a JSON pointer to the offending value ("" for the whole payload) and
// Reason what is wrong with it. Neither quotes the value: payloads carry
// patient data, and this error's text ends up in logs and in the poison
// topic's reason header. Retrying cannot fix it: the caller treats it as a
// permanent failure.
type ValidationError struct {
	// Type names the message type, e.g. "checkup event".
	Type string
	// Field is a JSON pointer such as "/result/version"; "" is the payload.
	// An unknown property whose name does not look like a field name (it
	// could be data) shows as "(name withheld)".
	Field string
	// Reason is the problem, e.g. "must be >= 1" or "is required".
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Type + ": " + e.Reason
	}
	return e.Type + ": " + e.Field + ": " + e.Reason
}

// SyntaxError says that a payload is not a single well-formed JSON value.
// Like ValidationError it never quotes the payload, and it is permanent.
type SyntaxError struct {
	// Type names the message type, e.g. "checkup event".
	Type string
	// Offset is the byte offset in the payload where the problem was found.
	Offset int64
	// Reason is the problem, e.g. "unexpected end of input".
	Reason string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s: not valid JSON: %s (byte %d)", e.Type, e.Reason, e.Offset)
}

// segment matches the path segments an error may show: JSON names in the
// style of the contracts (snake_case identifiers) and array indices.
var segment = regexp.MustCompile(`^(?:[A-Za-z_][A-Za-z0-9_.-]{0,63}|[0-9]{1,9})$`)

// withheld stands for a path segment an error does not repeat.
const withheld = "(name withheld)"

// pointer builds a JSON pointer (RFC 6901) from path segments. Segments come
// from the schema, except the name of an unexpected property, which comes
// from the payload: a producer could put anything there, even patient data.
// Names that do not look like field names are therefore withheld.
func pointer(segments []string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		if !segment.MatchString(s) {
			b.WriteString(withheld)
			continue
		}
		b.WriteString(s) // no "~" or "/" to escape in a matching segment
	}
	return b.String()
}
