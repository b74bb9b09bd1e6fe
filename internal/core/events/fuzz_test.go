package events_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rfd-notify/rfd/contracts"
	"github.com/rfd-notify/rfd/internal/core/events"
)

// The fuzzers check three properties of every decoder, on any input:
//   - it never panics;
//   - it fails only with *events.SyntaxError or *events.ValidationError (the
//     errors callers treat as permanent), on one line;
//   - what it accepts re-encodes (passing the schema again) and decodes to
//     an equal value: nothing is lost or invented between payload and struct.
//
// Their seed corpora are in testdata/fuzz/<FuzzName>/: the example of the
// contract and a few malformed payloads.

// fuzzRoundTrip is the body shared by the fuzzers.
func fuzzRoundTrip[T interface{ Encode() ([]byte, error) }](t *testing.T, decode func([]byte) (T, error), payload []byte) {
	v, err := decode(payload)
	if err != nil {
		var se *events.SyntaxError
		var ve *events.ValidationError
		if !errors.As(err, &se) && !errors.As(err, &ve) {
			t.Fatalf("untyped error %T: %v", err, err)
		}
		if len(err.Error()) > 400 {
			t.Fatalf("error too long (%d bytes): %v", len(err.Error()), err)
		}
		for _, c := range err.Error() {
			if c == '\n' || c == '\r' {
				t.Fatalf("multi-line error: %q", err)
			}
		}
		return
	}
	b, err := v.Encode()
	if err != nil {
		t.Fatalf("decoded value does not encode: %v", err)
	}
	again, err := decode(b)
	if err != nil {
		t.Fatalf("re-encoded value does not decode: %v\n%s", err, b)
	}
	require.Equal(t, v, again)
}

func addExample(f *testing.F, file string) {
	b, err := contracts.FS.ReadFile(file)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

func FuzzDecodeCheckupEvent(f *testing.F) {
	addExample(f, contracts.CheckupEventExample)
	f.Fuzz(func(t *testing.T, payload []byte) { fuzzRoundTrip(t, events.DecodeCheckupEvent, payload) })
}

func FuzzDecodeOrderHistoryEvent(f *testing.F) {
	addExample(f, contracts.OrderHistoryEventExample)
	f.Fuzz(func(t *testing.T, payload []byte) { fuzzRoundTrip(t, events.DecodeOrderHistoryEvent, payload) })
}

func FuzzDecodeUserCreated(f *testing.F) {
	addExample(f, contracts.UserCreatedExample)
	f.Fuzz(func(t *testing.T, payload []byte) { fuzzRoundTrip(t, events.DecodeUserCreated, payload) })
}

func FuzzDecodeInternalLogin(f *testing.F) {
	addExample(f, contracts.InternalLoginExample)
	f.Fuzz(func(t *testing.T, payload []byte) { fuzzRoundTrip(t, events.DecodeInternalLogin, payload) })
}

func FuzzDecodeSendNotification(f *testing.F) {
	addExample(f, contracts.SendNotificationExample)
	f.Fuzz(func(t *testing.T, payload []byte) { fuzzRoundTrip(t, events.DecodeSendNotification, payload) })
}

func FuzzDecodeReportMail(f *testing.F) {
	addExample(f, contracts.ReportMailExample)
	f.Fuzz(func(t *testing.T, payload []byte) { fuzzRoundTrip(t, events.DecodeReportMail, payload) })
}

// The seed corpus carries each contract's current example, so fuzzing
// starts from a valid payload even when the example changes. To refresh one:
// copy the example into testdata/fuzz/<FuzzName>/example in the
// "go test fuzz v1" format this test prints.
func TestFuzzCorpusHasExamples(t *testing.T) {
	for name, file := range map[string]string{
		"FuzzDecodeCheckupEvent":      contracts.CheckupEventExample,
		"FuzzDecodeOrderHistoryEvent": contracts.OrderHistoryEventExample,
		"FuzzDecodeUserCreated":       contracts.UserCreatedExample,
		"FuzzDecodeInternalLogin":     contracts.InternalLoginExample,
		"FuzzDecodeSendNotification":  contracts.SendNotificationExample,
		"FuzzDecodeReportMail":        contracts.ReportMailExample,
	} {
		b, err := contracts.FS.ReadFile(file)
		require.NoError(t, err)
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		got, err := os.ReadFile(filepath.Join("testdata", "fuzz", name, "example"))
		require.NoError(t, err, name)
		assert.Equal(t, want, string(got), "%s: seed corpus example is stale", name)

		entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, len(entries), 4, "%s: the example and a few malformed payloads", name)
	}
}
