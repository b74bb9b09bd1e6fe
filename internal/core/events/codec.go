package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/rfd-notify/rfd/contracts"
)

// schemaBase is the base of the schemas' $id.
const schemaBase = "https://contracts.rfd-notify.example/"

// contract ties a message type to its compiled schema.
type contract struct {
	name   string // in errors, e.g. "checkup event"
	schema *jsonschema.Schema
}

// The schemas compile when the package initialises: they are part of the
// binary, so a broken one is a bug that must stop the process at start-up,
// not poison every message later.
var (
	checkupContract          = mustContract("checkup event", contracts.CheckupEventSchema)
	orderHistoryContract     = mustContract("order history event", contracts.OrderHistoryEventSchema)
	userCreatedContract      = mustContract("user created event", contracts.UserCreatedSchema)
	internalLoginContract    = mustContract("internal login event", contracts.InternalLoginSchema)
	sendNotificationContract = mustContract("send-notification command", contracts.SendNotificationSchema)
	reportMailContract       = mustContract("report-mail command", contracts.ReportMailSchema)
)

func mustContract(name, file string) *contract {
	sch, err := compile(file)
	if err != nil {
		panic(fmt.Sprintf("events: schema %s: %v", file, err))
	}
	return &contract{name: name, schema: sch}
}

func compile(file string) (*jsonschema.Schema, error) {
	f, err := contracts.FS.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// Draft 2020-12 treats format as an annotation unless asked to assert
	// it; our contracts mean it (date-time, email, ipv4, ipv6).
	c.AssertFormat()
	c.RegisterFormat(&jsonschema.Format{Name: "date-time", Validate: validateDateTime})
	// The schemas are self-contained (their $refs are internal), so the
	// compiler never fetches anything; the location is their $id.
	loc := schemaBase + file
	if err := c.AddResource(loc, doc); err != nil {
		return nil, err
	}
	return c.Compile(loc)
}

// validateDateTime accepts exactly the RFC 3339 date-times that time.Time
// decodes, and whose instant falls in years 0-9999 in UTC. The library's own
// date-time format is laxer (lowercase t and z, leap seconds), and a payload
// valid against the schema must never fail to decode afterwards; the
// decoders turn times into UTC, and time.Time refuses to encode a year
// outside 0-9999 ("0000-01-01T00:30:00+01:00" is in year -1 in UTC).
func validateDateTime(v any) error {
	s, ok := v.(string)
	if !ok {
		return nil
	}
	var t time.Time
	if err := t.UnmarshalText([]byte(s)); err != nil {
		return errors.New("not an RFC 3339 date-time")
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return errors.New("year out of range")
	}
	return nil
}

// decode is the pipeline every decoder shares: parse, validate, then fill
// the struct from the validated document (normalised), never from the raw
// payload. With duplicate keys the struct decoder would merge the
// occurrences while the validator saw only the last one; decoding what was
// validated rules that out.
func decode[T any](c *contract, payload []byte) (T, error) {
	var v T
	doc, err := parse(c.name, payload)
	if err != nil {
		return v, err
	}
	if err := c.validate(doc); err != nil {
		return v, err
	}
	canonical, err := json.Marshal(normalizeIntegers(doc))
	if err != nil {
		return v, fmt.Errorf("%s: re-encode: %w", c.name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(canonical))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, c.structError(err)
	}
	return v, nil
}

// encode marshals v and checks the result against the schema, so a bug in
// a producer fails where it is made, not in a consumer's poison topic.
func encode(c *contract, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s: encode: %w", c.name, err)
	}
	doc, err := parse(c.name, b)
	if err != nil {
		return nil, err
	}
	if err := c.validate(doc); err != nil {
		return nil, err
	}
	return b, nil
}

// parse reads exactly one JSON value, numbers kept as json.Number as the
// validator requires, and refuses text a database cannot store.
func parse(name string, payload []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, syntaxError(name, err, int64(len(payload)))
	}
	if off := dec.InputOffset(); len(bytes.TrimLeft(payload[off:], " \t\r\n")) > 0 {
		return nil, &SyntaxError{Type: name, Offset: off, Reason: "unexpected data after the JSON value"}
	}
	// Text a database cannot store fails the same way on every attempt
	// (PostgreSQL refuses NUL and invalid UTF-8), so it is a validation
	// error, permanent, found before any work is done.
	flaw, err := Scan(payload, ScanOptions{})
	if err != nil {
		return nil, &SyntaxError{Type: name, Reason: "unreadable JSON"}
	}
	if flaw != nil {
		return nil, &ValidationError{Type: name, Field: flaw.Pointer(), Reason: flaw.Reason}
	}
	return doc, nil
}

// syntaxError describes a JSON parse failure without the json package's own
// text, which quotes the offending character. end is the payload's length:
// where input ran out.
func syntaxError(name string, err error, end int64) *SyntaxError {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return &SyntaxError{Type: name, Offset: se.Offset, Reason: "malformed JSON"}
	case errors.Is(err, io.EOF):
		return &SyntaxError{Type: name, Offset: end, Reason: "empty payload"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &SyntaxError{Type: name, Offset: end, Reason: "unexpected end of input"}
	default:
		return &SyntaxError{Type: name, Reason: "unreadable JSON"}
	}
}

// normalizeIntegers rewrites integral numbers in canonical integer form
// ("1.0" and "1e0" become "1"). JSON Schema counts 1.0 as an integer; Go's
// decoder would refuse it for an int field. It runs on validated documents
// only, whose numbers the schemas bound, so no number here is huge.
func normalizeIntegers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalizeIntegers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = normalizeIntegers(e)
		}
	case json.Number:
		if !strings.ContainsAny(string(v), ".eE") {
			return v
		}
		if r, ok := new(big.Rat).SetString(string(v)); ok && r.IsInt() {
			return json.Number(r.Num().String())
		}
	}
	return v
}

// structError describes a failure of the struct decoder on a document the
// schema accepted, which means the schema and the Go type disagree. The json
// package's own text quotes the value, so it is not used.
func (c *contract) structError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		var segs []string
		if te.Field != "" {
			segs = strings.Split(te.Field, ".")
		}
		return &ValidationError{Type: c.name, Field: pointer(segs), Reason: "must be " + jsonKind(te.Type.Kind().String())}
	}
	return &ValidationError{Type: c.name, Reason: "does not match the Go type of the message"}
}

// validate checks doc against the schema and reports the first problem.
func (c *contract) validate(doc any) error {
	err := c.schema.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("%s: validate: %w", c.name, err)
	}
	problems := collect(ve, nil)
	if len(problems) == 0 { // cannot happen: a failure has a cause
		return &ValidationError{Type: c.name, Reason: "is invalid"}
	}
	// The validator walks objects in map order; sorting makes the reported
	// problem the same on every attempt, so the poison reason is stable.
	slices.SortFunc(problems, func(a, b problem) int {
		if a.field != b.field {
			return strings.Compare(a.field, b.field)
		}
		return strings.Compare(a.reason, b.reason)
	})
	return &ValidationError{Type: c.name, Field: problems[0].field, Reason: problems[0].reason}
}

type problem struct{ field, reason string }

// collect flattens the validator's error tree into problems at its leaves.
// Every reason is written here from the schema's side of the error (type,
// limits, allowed values); the library's own messages are not used because
// they quote the offending value.
func collect(e *jsonschema.ValidationError, out []problem) []problem {
	at := pointer(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			out = append(out, problem{pointer(append(slices.Clone(e.InstanceLocation), m)), "is required"})
		}
		return out
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			out = append(out, problem{pointer(append(slices.Clone(e.InstanceLocation), p)), "is not allowed (unknown field)"})
		}
		return out
	case *kind.AnyOf, *kind.OneOf:
		if oneOf, ok := k.(*kind.OneOf); ok && oneOf.Subschemas != nil {
			return append(out, problem{at, "matches more than one allowed form"})
		}
		// "must be a valid IPv4 address or a valid IPv6 address"
		var alts []string
		for _, cause := range e.Causes {
			for _, p := range collect(cause, nil) {
				r := strings.TrimPrefix(p.reason, "must be ")
				if !slices.Contains(alts, r) {
					alts = append(alts, r)
				}
			}
		}
		return append(out, problem{at, "must be " + strings.Join(alts, " or ")})
	}
	if len(e.Causes) > 0 { // schema root, $ref, allOf, if/then: look inside
		for _, cause := range e.Causes {
			out = collect(cause, out)
		}
		return out
	}
	return append(out, problem{at, reason(e.ErrorKind)})
}

// reason words a leaf error. Only schema-side facts go in: expected types,
// bounds, allowed values and patterns are part of the published contract.
func reason(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Type:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = jsonKind(w)
		}
		return "must be " + strings.Join(want, " or ") + ", not " + k.Got
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = fmt.Sprint(w)
		}
		return "must be one of: " + strings.Join(want, ", ")
	case *kind.Const:
		return fmt.Sprintf("must be %v", k.Want)
	case *kind.Format:
		return "must be " + formatName(k.Want)
	case *kind.Pattern:
		return "must match the pattern " + k.Want
	case *kind.MinLength:
		if k.Want == 1 {
			return "must not be empty"
		}
		return fmt.Sprintf("must be at least %d characters long", k.Want)
	case *kind.MaxLength:
		return fmt.Sprintf("must be at most %d characters long", k.Want)
	case *kind.Minimum:
		return "must be >= " + k.Want.RatString()
	case *kind.Maximum:
		return "must be <= " + k.Want.RatString()
	case *kind.ExclusiveMinimum:
		return "must be > " + k.Want.RatString()
	case *kind.ExclusiveMaximum:
		return "must be < " + k.Want.RatString()
	case *kind.MinItems:
		return fmt.Sprintf("must have at least %d item(s)", k.Want)
	case *kind.MaxItems:
		return fmt.Sprintf("must have at most %d items", k.Want)
	case *kind.FalseSchema:
		return "is not allowed"
	default:
		return "is invalid (" + strings.Join(k.KeywordPath(), "/") + ")"
	}
}

func jsonKind(t string) string {
	switch t {
	case "object", "array", "integer":
		return "an " + t
	case "string", "number", "boolean":
		return "a " + t
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	default:
		return t
	}
}

func formatName(f string) string {
	switch f {
	case "date-time":
		return "an RFC 3339 date-time (e.g. 2026-01-31T09:00:00+07:00)"
	case "email":
		return "a valid email address"
	case "ipv4":
		return "a valid IPv4 address"
	case "ipv6":
		return "a valid IPv6 address"
	default:
		return "a valid " + f
	}
}
