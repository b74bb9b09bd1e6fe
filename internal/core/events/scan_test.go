package events_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rfd-notify/rfd/internal/core/events"
)

func TestScan(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		dups      bool
		// location and reason of the flaw; "" is none.
		location, reason string
	}{
		{name: "clean", doc: `{"a":"x","b":[1,"y",{"c":null}]}`},
		{name: "escaped NUL", doc: `{"patient":{"name":"Som\u0000chai"}}`, location: "body.patient.name", reason: events.ReasonNUL},
		{name: "NUL in an array", doc: `{"tests":[{"name":"K"},{"name":"\u0000"}]}`, location: "body.tests[1].name", reason: events.ReasonNUL},
		{name: "NUL at the root", doc: `"\u0000"`, location: "body", reason: events.ReasonNUL},
		{name: "NUL in a name", doc: `{"a":{"x\u0000":1}}`, location: "body.a", reason: events.ReasonNULName},
		{name: "invalid UTF-8", doc: "{\"a\":[\"ok\",\"\xff\"]}", location: "body.a[1]", reason: events.ReasonUTF8},
		{name: "invalid UTF-8 in a name", doc: "{\"\xc3\":1}", location: "body", reason: events.ReasonUTF8Name},
		{name: "escaped backslash is no NUL", doc: `{"a":"\\u0000"}`},
		{name: "duplicates not asked for", doc: `{"a":1,"a":2}`},
		{name: "duplicate", doc: `{"a":{"b":1,"c":2,"b":3}}`, dups: true, location: "body.a.b", reason: events.ReasonDuplicate},
		{name: "same name in sibling objects", doc: `[{"a":1},{"a":2}]`, dups: true},
		{name: "a name that could be data is withheld", doc: `{"Somchai Jaidee 1970":1,"Somchai Jaidee 1970":2}`, dups: true,
			location: "body.(name withheld)", reason: events.ReasonDuplicate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := events.Scan([]byte(tc.doc), events.ScanOptions{Duplicates: tc.dups})
			require.NoError(t, err)
			if tc.reason == "" {
				assert.Nil(t, f)
				return
			}
			require.NotNil(t, f)
			assert.Equal(t, tc.location, f.Location("body"))
			assert.Equal(t, tc.reason, f.Reason)
		})
	}
	_, err := events.Scan([]byte(`{"a":`), events.ScanOptions{Duplicates: true})
	assert.Error(t, err, "not JSON")
}

// TestDecodersRefuseTextTheDatabaseCannotStore: every decoder refuses a NUL
// (escaped) or invalid UTF-8 anywhere in a string with a ValidationError
// naming the field, never the value, which the consumers poison at once.
func TestDecodersRefuseTextTheDatabaseCannotStore(t *testing.T) {
	for file, dec := range decoders {
		for kind, bad := range map[string]string{"nul": `a\u0000b`, "utf8": "a\xffb"} {
			t.Run(file+"/"+kind, func(t *testing.T) {
				payload := example(t, file)
				// The first string value of the example gets the bad text.
				i := strings.Index(string(payload), `": "`)
				require.Positive(t, i)
				i += len(`": "`)
				corrupt := string(payload[:i]) + bad + string(payload[i:])
				_, err := dec([]byte(corrupt))
				var ve *events.ValidationError
				require.True(t, errors.As(err, &ve), "error %v", err)
				assert.NotEmpty(t, ve.Field)
				assert.Contains(t, []string{events.ReasonNUL, events.ReasonUTF8}, ve.Reason)
				assert.NotContains(t, err.Error(), "a\x00b")
			})
		}
	}
	_, err := events.CheckupEvent{EventType: "result_available", CheckupID: "C\x00"}.Encode()
	var ve *events.ValidationError
	assert.True(t, errors.As(err, &ve), "a producer cannot publish a NUL either: %v", err)
}
