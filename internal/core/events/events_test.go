package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rfd-notify/rfd/contracts"
	"github.com/rfd-notify/rfd/internal/core/events"
)

func example(t testing.TB, file string) []byte {
	t.Helper()
	b, err := contracts.FS.ReadFile(file)
	require.NoError(t, err)
	return b
}

// mutate returns the example with f applied to it as a generic document.
func mutate(t *testing.T, file string, f func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(example(t, file), &doc))
	f(doc)
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	return b
}

// obj returns the object at doc[key].
func obj(doc map[string]any, key string) map[string]any { return doc[key].(map[string]any) }

// firstTest returns the first test of the example checkup's result.
func firstTest(doc map[string]any) map[string]any {
	return obj(doc, "result")["tests"].([]any)[0].(map[string]any)
}

// decoders, by example file, so one table can drive them all.
var decoders = map[string]func([]byte) (any, error){
	contracts.CheckupEventExample:      func(b []byte) (any, error) { return events.DecodeCheckupEvent(b) },
	contracts.OrderHistoryEventExample: func(b []byte) (any, error) { return events.DecodeOrderHistoryEvent(b) },
	contracts.UserCreatedExample:       func(b []byte) (any, error) { return events.DecodeUserCreated(b) },
	contracts.InternalLoginExample:     func(b []byte) (any, error) { return events.DecodeInternalLogin(b) },
	contracts.SendNotificationExample:  func(b []byte) (any, error) { return events.DecodeSendNotification(b) },
	contracts.ReportMailExample:        func(b []byte) (any, error) { return events.DecodeReportMail(b) },
}

func bangkok(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return ts.UTC()
}

func TestDecodeExamples(t *testing.T) {
	t.Run("checkup", func(t *testing.T) {
		ev, err := events.DecodeCheckupEvent(example(t, contracts.CheckupEventExample))
		require.NoError(t, err)
		assert.Equal(t, events.CheckupResultAvailable, ev.EventType)
		assert.Equal(t, "CHK-2026-0004512", ev.CheckupID)
		assert.Equal(t, "ORD-2026-0001187", ev.OrderID)
		assert.Equal(t, events.Patient{Ref: "HN-65-004821", DisplayName: "Somchai Jaidee", BirthYear: 1968}, ev.Patient)
		assert.Equal(t, []events.ReferringDoctor{
			{ExternalUserID: "um-usr-7f3a9c", Role: events.RolePrimary},
			{ExternalUserID: "um-usr-2b81d4", Role: events.RoleCopy},
		}, ev.ReferringDoctors)
		assert.Equal(t, bangkok(t, "2026-11-24T14:05:31+07:00"), ev.OccurredAt)
		assert.Equal(t, time.UTC, ev.OccurredAt.Location(), "decoded times are UTC")
		require.NotNil(t, ev.ScheduledAt)
		assert.Equal(t, bangkok(t, "2026-11-24T08:30:00+07:00"), *ev.ScheduledAt)
		require.NotNil(t, ev.Result)
		assert.Equal(t, 1, ev.Result.Version)
		assert.Equal(t, events.ResultFinal, ev.Result.Status)
		assert.False(t, ev.Result.Critical)
		require.Len(t, ev.Result.Tests, 3)
		assert.Equal(t, events.Test{Code: "GLU-F", Name: "Fasting plasma glucose", Value: "131", Unit: "mg/dL", Flag: events.FlagHigh}, ev.Result.Tests[0])
		assert.NotEmpty(t, ev.Result.Summary)
	})
	t.Run("order history", func(t *testing.T) {
		ev, err := events.DecodeOrderHistoryEvent(example(t, contracts.OrderHistoryEventExample))
		require.NoError(t, err)
		assert.Equal(t, events.OrderHistoryEvent{
			OrderID:          "ORD-2026-0001187",
			Sequence:         3,
			Status:           events.OrderSampleCollected,
			OccurredAt:       bangkok(t, "2026-11-24T09:12:47+07:00"),
			Patient:          events.OrderPatient{Ref: "HN-65-004821"},
			ReferringDoctors: []events.OrderDoctor{{ExternalUserID: "um-usr-7f3a9c"}},
			Description:      "Blood sample collected at Sukhumvit branch, lab run expected by 14:00.",
		}, ev)
	})
	t.Run("user created", func(t *testing.T) {
		ev, err := events.DecodeUserCreated(example(t, contracts.UserCreatedExample))
		require.NoError(t, err)
		assert.Equal(t, "um-usr-7f3a9c", ev.ExternalUserID)
		assert.Equal(t, events.UserTypeReferringDoctor, ev.UserType)
		assert.Contains(t, ev.Name, "สุภาพร")
		assert.Equal(t, &events.Clinic{ID: "CL-BKK-017", Name: "Sukhumvit Family Clinic"}, ev.Clinic)
		assert.Equal(t, "+66812345678", ev.Phone)
		assert.Equal(t, events.LocaleThai, ev.Locale)
		assert.Equal(t, "Asia/Bangkok", ev.TimeZone)
		assert.True(t, ev.IsActive())
		assert.Equal(t, bangkok(t, "2026-11-20T10:15:00+07:00"), ev.UpdatedAt)
	})
	t.Run("internal login", func(t *testing.T) {
		ev, err := events.DecodeInternalLogin(example(t, contracts.InternalLoginExample))
		require.NoError(t, err)
		assert.Equal(t, events.LoginSuccess, ev.Outcome)
		assert.Equal(t, events.LoginPasskey, ev.Method)
		assert.Equal(t, "203.0.113.48", ev.SourceIP)
		assert.Equal(t, "dev-1c9e44a0", ev.DeviceID)
		assert.Equal(t, bangkok(t, "2026-11-24T18:42:09+07:00"), ev.OccurredAt)
	})
	t.Run("send notification", func(t *testing.T) {
		cmd, err := events.DecodeSendNotification(example(t, contracts.SendNotificationExample))
		require.NoError(t, err)
		assert.Equal(t, events.SendNotification{
			DeliveryID:     "01JDQ7M4W3Z8K6V2N9R5T1XHBC",
			NotificationID: "01JDQ7M4W2F4Y7P0A3S6D9GJKE",
			DoctorID:       "doc_01JCZ3B8Q5N2M7",
			Channel:        events.ChannelSMS,
			Category:       events.CategoryCriticalResults,
			Priority:       events.PriorityCritical,
			Type:           "critical_result",
			SendAt:         bangkok(t, "2026-11-24T14:05:33+07:00"),
			Attempt:        1,
		}, cmd)
	})
}

type badCase struct {
	name    string
	file    string // example the payload is made from, and decoder
	payload []byte
	// want is a *SyntaxError (Reason compared) or *ValidationError (Field
	// compared, Reason must contain want's Reason).
	want error
}

func syntaxErr(reason string) error { return &events.SyntaxError{Reason: reason} }

func invalid(field, reason string) error {
	return &events.ValidationError{Field: field, Reason: reason}
}

func badCases(t *testing.T) []badCase {
	const ce = contracts.CheckupEventExample
	ex := example(t, ce)
	return []badCase{
		// not JSON
		{"not JSON", ce, []byte("not json"), syntaxErr("malformed JSON")},
		{"empty", ce, nil, syntaxErr("empty payload")},
		{"blank", ce, []byte(" \n"), syntaxErr("empty payload")},
		{"truncated", ce, ex[:len(ex)/2], syntaxErr("unexpected end of input")},
		{"two values", ce, append(append([]byte{}, ex...), []byte(` {}`)...), syntaxErr("unexpected data after the JSON value")},
		{"trailing garbage", ce, append(append([]byte{}, ex...), 'x'), syntaxErr("unexpected data after the JSON value")},
		{"not an object", ce, []byte(`["result_available"]`), invalid("", "must be an object, not array")},
		{"null", ce, []byte(`null`), invalid("", "must be an object, not null")},

		// missing required fields
		{"missing checkup_id", ce, mutate(t, ce, func(d map[string]any) { delete(d, "checkup_id") }), invalid("/checkup_id", "is required")},
		{"missing patient ref", ce, mutate(t, ce, func(d map[string]any) { delete(obj(d, "patient"), "ref") }), invalid("/patient/ref", "is required")},
		{"missing test value", ce, mutate(t, ce, func(d map[string]any) { delete(firstTest(d), "value") }), invalid("/result/tests/0/value", "is required")},
		{"missing result version", ce, mutate(t, ce, func(d map[string]any) { delete(obj(d, "result"), "version") }), invalid("/result/version", "is required")},
		{"result missing on result_available", ce, mutate(t, ce, func(d map[string]any) { delete(d, "result") }), invalid("/result", "is required")},
		{"result missing on critical_result", ce, mutate(t, ce, func(d map[string]any) {
			d["event_type"] = events.CheckupCriticalResult
			delete(d, "result")
		}), invalid("/result", "is required")},
		{"no referring doctor", ce, mutate(t, ce, func(d map[string]any) { d["referring_doctors"] = []any{} }), invalid("/referring_doctors", "must have at least 1 item(s)")},
		{"empty checkup_id", ce, mutate(t, ce, func(d map[string]any) { d["checkup_id"] = "" }), invalid("/checkup_id", "must not be empty")},

		// wrong enum values
		{"event_type", ce, mutate(t, ce, func(d map[string]any) { d["event_type"] = "result_ready" }), invalid("/event_type", "must be one of: checkup_scheduled, checkup_completed, result_available, critical_result, checkup_cancelled")},
		{"result status", ce, mutate(t, ce, func(d map[string]any) { obj(d, "result")["status"] = "FINAL" }), invalid("/result/status", "must be one of:")},
		{"test flag", ce, mutate(t, ce, func(d map[string]any) { firstTest(d)["flag"] = "HIGH" }), invalid("/result/tests/0/flag", "must be one of: N, H, L, HH, LL, A")},
		{"doctor role", ce, mutate(t, ce, func(d map[string]any) {
			d["referring_doctors"].([]any)[1].(map[string]any)["role"] = "cc"
		}), invalid("/referring_doctors/1/role", "must be one of: primary, copy")},

		// wrong types and values
		{"version as string", ce, mutate(t, ce, func(d map[string]any) { obj(d, "result")["version"] = "1" }), invalid("/result/version", "must be an integer, not string")},
		{"version fractional", ce, mutate(t, ce, func(d map[string]any) { obj(d, "result")["version"] = 1.5 }), invalid("/result/version", "must be an integer, not number")},
		{"version zero", ce, mutate(t, ce, func(d map[string]any) { obj(d, "result")["version"] = 0 }), invalid("/result/version", "must be >= 1")},
		{"critical as string", ce, mutate(t, ce, func(d map[string]any) { obj(d, "result")["critical"] = "true" }), invalid("/result/critical", "must be a boolean, not string")},
		{"patient null", ce, mutate(t, ce, func(d map[string]any) { d["patient"] = nil }), invalid("/patient", "must be an object, not null")},
		{"doctors as object", ce, mutate(t, ce, func(d map[string]any) { d["referring_doctors"] = map[string]any{} }), invalid("/referring_doctors", "must be an array, not object")},
		{"birth year", ce, mutate(t, ce, func(d map[string]any) { obj(d, "patient")["birth_year"] = 68 }), invalid("/patient/birth_year", "must be >= 1900")},
		{"occurred_at not a date-time", ce, mutate(t, ce, func(d map[string]any) { d["occurred_at"] = "24/11/2026 14:05" }), invalid("/occurred_at", "must be an RFC 3339 date-time")},
		{"occurred_at without zone", ce, mutate(t, ce, func(d map[string]any) { d["occurred_at"] = "2026-11-24T14:05:31" }), invalid("/occurred_at", "must be an RFC 3339 date-time")},
		{"occurred_at lowercase t", ce, mutate(t, ce, func(d map[string]any) { d["occurred_at"] = "2026-11-24t14:05:31Z" }), invalid("/occurred_at", "must be an RFC 3339 date-time")},
		{"occurred_at leap second", ce, mutate(t, ce, func(d map[string]any) { d["occurred_at"] = "2016-12-31T23:59:60Z" }), invalid("/occurred_at", "must be an RFC 3339 date-time")},
		{"occurred_at before year 0 in UTC", ce, mutate(t, ce, func(d map[string]any) { d["occurred_at"] = "0000-01-01T00:30:00+01:00" }), invalid("/occurred_at", "must be an RFC 3339 date-time")},

		// unknown fields
		{"unknown top-level field", ce, mutate(t, ce, func(d map[string]any) { d["priority"] = "high" }), invalid("/priority", "is not allowed (unknown field)")},
		{"unknown nested field", ce, mutate(t, ce, func(d map[string]any) { obj(d, "patient")["national_id"] = "3100500123456" }), invalid("/patient/national_id", "is not allowed (unknown field)")},
		{"field in other case", ce, mutate(t, ce, func(d map[string]any) { d["Checkup_ID"] = d["checkup_id"] }), invalid("/Checkup_ID", "is not allowed (unknown field)")},

		// the other message types
		{"order: missing sequence", contracts.OrderHistoryEventExample, mutate(t, contracts.OrderHistoryEventExample, func(d map[string]any) { delete(d, "sequence") }), invalid("/sequence", "is required")},
		{"order: sequence zero", contracts.OrderHistoryEventExample, mutate(t, contracts.OrderHistoryEventExample, func(d map[string]any) { d["sequence"] = 0 }), invalid("/sequence", "must be >= 1")},
		{"order: status", contracts.OrderHistoryEventExample, mutate(t, contracts.OrderHistoryEventExample, func(d map[string]any) { d["status"] = "collected" }), invalid("/status", "must be one of: placed, scheduled, sample_collected, in_progress, completed, cancelled")},
		{"order: patient name", contracts.OrderHistoryEventExample, mutate(t, contracts.OrderHistoryEventExample, func(d map[string]any) { obj(d, "patient")["display_name"] = "Somchai Jaidee" }), invalid("/patient/display_name", "is not allowed (unknown field)")},
		{"order: unknown field", contracts.OrderHistoryEventExample, mutate(t, contracts.OrderHistoryEventExample, func(d map[string]any) { d["version"] = 3 }), invalid("/version", "is not allowed (unknown field)")},
		{"user: missing name", contracts.UserCreatedExample, mutate(t, contracts.UserCreatedExample, func(d map[string]any) { delete(d, "name") }), invalid("/name", "is required")},
		{"user: email", contracts.UserCreatedExample, mutate(t, contracts.UserCreatedExample, func(d map[string]any) { d["email"] = "supaporn at clinic" }), invalid("/email", "must be a valid email address")},
		{"user: phone", contracts.UserCreatedExample, mutate(t, contracts.UserCreatedExample, func(d map[string]any) { d["phone"] = "081-234-5678" }), invalid("/phone", "must match the pattern")},
		{"user: locale", contracts.UserCreatedExample, mutate(t, contracts.UserCreatedExample, func(d map[string]any) { d["locale"] = "th-TH" }), invalid("/locale", "must be one of: en, th")},
		{"user: user_type", contracts.UserCreatedExample, mutate(t, contracts.UserCreatedExample, func(d map[string]any) { d["user_type"] = "doctor" }), invalid("/user_type", "must be one of: referring_doctor, staff, admin")},
		{"user: time zone", contracts.UserCreatedExample, mutate(t, contracts.UserCreatedExample, func(d map[string]any) { d["time_zone"] = "GMT +7" }), invalid("/time_zone", "must match the pattern")},
		{"user: active", contracts.UserCreatedExample, mutate(t, contracts.UserCreatedExample, func(d map[string]any) { d["active"] = "yes" }), invalid("/active", "must be a boolean, not string")},
		{"user: clinic unknown field", contracts.UserCreatedExample, mutate(t, contracts.UserCreatedExample, func(d map[string]any) { obj(d, "clinic")["address"] = "Sukhumvit 21" }), invalid("/clinic/address", "is not allowed (unknown field)")},
		{"login: source_ip", contracts.InternalLoginExample, mutate(t, contracts.InternalLoginExample, func(d map[string]any) { d["source_ip"] = "203.0.113.480" }), invalid("/source_ip", "must be a valid IPv4 address or a valid IPv6 address")},
		{"login: source_ip host name", contracts.InternalLoginExample, mutate(t, contracts.InternalLoginExample, func(d map[string]any) { d["source_ip"] = "portal.example" }), invalid("/source_ip", "must be a valid IPv4 address or a valid IPv6 address")},
		{"login: method", contracts.InternalLoginExample, mutate(t, contracts.InternalLoginExample, func(d map[string]any) { d["method"] = "magic_link" }), invalid("/method", "must be one of: password, sso, otp, passkey")},
		{"login: missing outcome", contracts.InternalLoginExample, mutate(t, contracts.InternalLoginExample, func(d map[string]any) { delete(d, "outcome") }), invalid("/outcome", "is required")},
		{"send: channel", contracts.SendNotificationExample, mutate(t, contracts.SendNotificationExample, func(d map[string]any) { d["channel"] = "line" }), invalid("/channel", "must be one of: in_app, email, sms, push, webhook")},
		{"send: category", contracts.SendNotificationExample, mutate(t, contracts.SendNotificationExample, func(d map[string]any) { d["category"] = "critical" }), invalid("/category", "must be one of:")},
		{"send: attempt zero", contracts.SendNotificationExample, mutate(t, contracts.SendNotificationExample, func(d map[string]any) { d["attempt"] = 0 }), invalid("/attempt", "must be >= 1")},
		{"send: missing send_at", contracts.SendNotificationExample, mutate(t, contracts.SendNotificationExample, func(d map[string]any) { delete(d, "send_at") }), invalid("/send_at", "is required")},
		{"send: type", contracts.SendNotificationExample, mutate(t, contracts.SendNotificationExample, func(d map[string]any) { d["type"] = "Critical Result" }), invalid("/type", "must match the pattern")},
		{"report: missing id", contracts.ReportMailExample, mutate(t, contracts.ReportMailExample, func(d map[string]any) { delete(d, "report_mail_id") }), invalid("/report_mail_id", "is required")},
		{"report: unknown field", contracts.ReportMailExample, mutate(t, contracts.ReportMailExample, func(d map[string]any) { d["to"] = "x@example.org" }), invalid("/to", "is not allowed (unknown field)")},
		{"send: patient data", contracts.SendNotificationExample, mutate(t, contracts.SendNotificationExample, func(d map[string]any) { d["patient_name"] = "Somchai Jaidee" }), invalid("/patient_name", "is not allowed (unknown field)")},
	}
}

var typeNames = map[string]string{
	contracts.CheckupEventExample:      "checkup event",
	contracts.OrderHistoryEventExample: "order history event",
	contracts.UserCreatedExample:       "user created event",
	contracts.InternalLoginExample:     "internal login event",
	contracts.SendNotificationExample:  "send-notification command",
	contracts.ReportMailExample:        "report-mail command",
}

func TestDecodeRejects(t *testing.T) {
	for _, c := range badCases(t) {
		t.Run(c.name, func(t *testing.T) {
			_, err := decoders[c.file](c.payload)
			require.Error(t, err)
			switch want := c.want.(type) {
			case *events.SyntaxError:
				var got *events.SyntaxError
				require.True(t, errors.As(err, &got), "want *events.SyntaxError, got %T: %v", err, err)
				assert.Equal(t, typeNames[c.file], got.Type)
				assert.Equal(t, want.Reason, got.Reason)
			case *events.ValidationError:
				var got *events.ValidationError
				require.True(t, errors.As(err, &got), "want *events.ValidationError, got %T: %v", err, err)
				assert.Equal(t, typeNames[c.file], got.Type)
				assert.Equal(t, want.Field, got.Field, "field of %q", err)
				assert.Contains(t, got.Reason, want.Reason)
				if want.Field != "" {
					assert.Equal(t, got.Type+": "+got.Field+": "+got.Reason, err.Error())
				}
			}
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestValidationErrorText(t *testing.T) {
	_, err := events.DecodeCheckupEvent(mutate(t, contracts.CheckupEventExample, func(d map[string]any) { obj(d, "result")["version"] = 0 }))
	assert.EqualError(t, err, "checkup event: /result/version: must be >= 1")
	_, err = events.DecodeCheckupEvent([]byte(`[]`))
	assert.EqualError(t, err, "checkup event: must be an object, not array")
	_, err = events.DecodeCheckupEvent([]byte(`{"event_type":`))
	assert.EqualError(t, err, "checkup event: not valid JSON: unexpected end of input (byte 14)")
}

// The same bad payload always reports the same problem, although the
// validator walks objects in random order: the poison reason is stable.
func TestDecodeReportsTheSameProblemEveryTime(t *testing.T) {
	payload := []byte(`{"event_type":"x","checkup_id":"","patient":{},"referring_doctors":[],"occurred_at":"now","zzz":1}`)
	_, first := events.DecodeCheckupEvent(payload)
	require.Error(t, first)
	for range 50 {
		_, err := events.DecodeCheckupEvent(payload)
		require.Equal(t, first.Error(), err.Error())
	}
}

// phi is patient data in the checkup example; errors must never repeat it.
var phi = []string{"Somchai", "Jaidee", "HN-65-004821", "Fasting plasma glucose", "131", "6.9", "118", "mg/dL", "above the reference range"}

// errorText is what an error says, minus SyntaxError's byte offset (a
// number that could equal a numeric test value by chance).
func errorText(err error) string {
	var se *events.SyntaxError
	if errors.As(err, &se) {
		return se.Type + ": " + se.Reason
	}
	return err.Error()
}

func TestErrorsDoNotRepeatPatientData(t *testing.T) {
	const ce = contracts.CheckupEventExample
	name := "Somchai Jaidee"
	ex := string(example(t, ce))
	payloads := map[string][]byte{
		"name as event type":        mutate(t, ce, func(d map[string]any) { d["event_type"] = name }),
		"name as date-time":         mutate(t, ce, func(d map[string]any) { d["occurred_at"] = name }),
		"name as birth year":        mutate(t, ce, func(d map[string]any) { obj(d, "patient")["birth_year"] = name }),
		"name as patient":           mutate(t, ce, func(d map[string]any) { d["patient"] = name }),
		"name too long":             mutate(t, ce, func(d map[string]any) { obj(d, "patient")["display_name"] = strings.Repeat(name+" ", 20) }),
		"name as order id too long": mutate(t, ce, func(d map[string]any) { d["order_id"] = strings.Repeat(name, 10) }),
		"name as unknown field":     mutate(t, ce, func(d map[string]any) { d[name] = true }),
		"name as nested field":      mutate(t, ce, func(d map[string]any) { obj(d, "patient")[name] = true }),
		"name as ref type":          mutate(t, ce, func(d map[string]any) { obj(d, "patient")["ref"] = []any{name} }),
		"value as version":          mutate(t, ce, func(d map[string]any) { obj(d, "result")["version"] = "131" }),
		"value as flag":             mutate(t, ce, func(d map[string]any) { firstTest(d)["flag"] = "131" }),
		"value as number":           mutate(t, ce, func(d map[string]any) { firstTest(d)["value"] = 131 }),
		"value as status":           mutate(t, ce, func(d map[string]any) { obj(d, "result")["status"] = "6.9" }),
		"unit as code type":         mutate(t, ce, func(d map[string]any) { firstTest(d)["code"] = map[string]any{"mg/dL": 118} }),
		"summary as critical":       mutate(t, ce, func(d map[string]any) { obj(d, "result")["critical"] = "above the reference range" }),
		"truncated in the name":     []byte(ex[:strings.Index(ex, "Jaidee")+3]),
		"control char in the name":  []byte(strings.Replace(ex, "Somchai Jaidee", "Somchai \x01 Jaidee", 1)),
		"bad escape in the name":    []byte(strings.Replace(ex, "Somchai Jaidee", `Somchai \q Jaidee`, 1)),
		"garbage after the result":  []byte(strings.Replace(ex, `"value": "131"`, `"value": "131" Somchai`, 1)),
	}
	for what, payload := range payloads {
		_, err := events.DecodeCheckupEvent(payload)
		require.Error(t, err, what)
		text := errorText(err)
		for _, s := range phi {
			assert.NotContains(t, text, s, "%s: %v", what, err)
		}
		for _, s := range []string{"Somchai", "Jaidee"} {
			assert.NotContains(t, err.Error(), s, what)
		}
	}

	// The user's name and contact data, on user-created.
	user := map[string]func(d map[string]any){
		"name as phone":     func(d map[string]any) { d["phone"] = d["name"] },
		"name as email":     func(d map[string]any) { d["email"] = d["name"] },
		"name as time zone": func(d map[string]any) { d["time_zone"] = d["name"] },
		"name as locale":    func(d map[string]any) { d["locale"] = d["name"] },
		"email as phone":    func(d map[string]any) { d["phone"] = d["email"] },
		"name as updated":   func(d map[string]any) { d["updated_at"] = d["name"] },
	}
	for what, f := range user {
		_, err := events.DecodeUserCreated(mutate(t, contracts.UserCreatedExample, f))
		require.Error(t, err, what)
		for _, s := range []string{"Supaporn", "สุภาพร", "supaporn.w", "81234"} {
			assert.NotContains(t, err.Error(), s, what)
		}
	}
}

func TestDecodeAccepts(t *testing.T) {
	const ce = contracts.CheckupEventExample
	t.Run("no result on other event types", func(t *testing.T) {
		for _, typ := range []string{events.CheckupScheduled, events.CheckupCompleted, events.CheckupCancelled} {
			ev, err := events.DecodeCheckupEvent(mutate(t, ce, func(d map[string]any) {
				d["event_type"] = typ
				delete(d, "result")
				delete(d, "scheduled_at")
			}))
			require.NoError(t, err, typ)
			assert.Nil(t, ev.Result)
			assert.Nil(t, ev.ScheduledAt)
		}
	})
	t.Run("integer written as 1.0", func(t *testing.T) {
		ev, err := events.DecodeCheckupEvent(mutate(t, ce, func(d map[string]any) { obj(d, "result")["version"] = json.Number("2.0") }))
		require.NoError(t, err)
		assert.Equal(t, 2, ev.Result.Version)
		ev2, err := events.DecodeOrderHistoryEvent(mutate(t, contracts.OrderHistoryEventExample, func(d map[string]any) { d["sequence"] = json.Number("1e3") }))
		require.NoError(t, err)
		assert.Equal(t, int64(1000), ev2.Sequence)
	})
	t.Run("ipv6 source", func(t *testing.T) {
		ev, err := events.DecodeInternalLogin(mutate(t, contracts.InternalLoginExample, func(d map[string]any) { d["source_ip"] = "2001:db8::48" }))
		require.NoError(t, err)
		assert.Equal(t, "2001:db8::48", ev.SourceIP)
	})
	t.Run("active absent means active, false is kept", func(t *testing.T) {
		ev, err := events.DecodeUserCreated(mutate(t, contracts.UserCreatedExample, func(d map[string]any) { delete(d, "active") }))
		require.NoError(t, err)
		assert.Nil(t, ev.Active)
		assert.True(t, ev.IsActive())
		ev, err = events.DecodeUserCreated(mutate(t, contracts.UserCreatedExample, func(d map[string]any) { d["active"] = false }))
		require.NoError(t, err)
		assert.False(t, ev.IsActive())
	})
	t.Run("minimal user", func(t *testing.T) {
		ev, err := events.DecodeUserCreated([]byte(`{"external_user_id":"um-usr-0001","user_type":"staff","name":"Nattaya K.","updated_at":"2026-11-20T03:15:00Z"}`))
		require.NoError(t, err)
		assert.Equal(t, events.UserTypeStaff, ev.UserType)
		assert.Nil(t, ev.Clinic)
	})
	t.Run("duplicate keys: the validated occurrence wins", func(t *testing.T) {
		// The first "result" has a test the schema would refuse; the
		// validator sees only the last one. Nothing of the first may leak
		// into the decoded event.
		payload := strings.Replace(string(example(t, ce)), `"result": {`,
			`"result": {"version": 9, "status": "bogus", "tests": [{"flag": "??"}]}, "result": {`, 1)
		ev, err := events.DecodeCheckupEvent([]byte(payload))
		require.NoError(t, err)
		assert.Equal(t, 1, ev.Result.Version)
		assert.Len(t, ev.Result.Tests, 3)
		assert.Equal(t, "GLU-F", ev.Result.Tests[0].Code)
	})
}

func TestEncodeRoundTrip(t *testing.T) {
	for file, dec := range decoders {
		t.Run(file, func(t *testing.T) {
			v, err := dec(example(t, file))
			require.NoError(t, err)
			b, err := v.(interface{ Encode() ([]byte, error) }).Encode()
			require.NoError(t, err)
			again, err := dec(b)
			require.NoError(t, err)
			assert.Equal(t, v, again)
		})
	}
}

func TestEncodeSendNotification(t *testing.T) {
	sendAt := time.Date(2026, 11, 24, 21, 0, 0, 0, time.FixedZone("ICT", 7*3600))
	cmd := events.SendNotification{
		DeliveryID:     "dlv-1",
		NotificationID: "ntf-1",
		DoctorID:       "doc-1",
		Channel:        events.ChannelEmail,
		Category:       events.CategoryResults,
		Priority:       events.PriorityNormal,
		Type:           "result_available",
		SendAt:         sendAt,
	}
	b, err := cmd.Encode()
	require.NoError(t, err)
	assert.JSONEq(t, `{"delivery_id":"dlv-1","notification_id":"ntf-1","doctor_id":"doc-1","channel":"email",
		"category":"results","priority":"normal","type":"result_available","send_at":"2026-11-24T21:00:00+07:00"}`, string(b),
		"attempt 0 is left out")
	got, err := events.DecodeSendNotification(b)
	require.NoError(t, err)
	assert.True(t, sendAt.Equal(got.SendAt))

	bad := cmd
	bad.DeliveryID = ""
	_, err = bad.Encode()
	var ve *events.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "/delivery_id", ve.Field)

	bad = cmd
	bad.Channel = "carrier_pigeon"
	_, err = bad.Encode()
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "/channel", ve.Field)
}

func TestEncodeRefusesWhatTheSchemaRefuses(t *testing.T) {
	ev := events.CheckupEvent{
		EventType:        events.CheckupResultAvailable,
		CheckupID:        "CHK-1",
		Patient:          events.Patient{Ref: "HN-1"},
		ReferringDoctors: []events.ReferringDoctor{{ExternalUserID: "um-1"}},
		OccurredAt:       time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC),
	}
	_, err := ev.Encode()
	var ve *events.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "/result", ve.Field)

	ev.Result = &events.Result{Version: 1, Status: events.ResultPreliminary, Tests: []events.Test{}}
	b, err := ev.Encode()
	require.NoError(t, err)
	assert.Contains(t, string(b), `"tests":[]`, "an empty, non-nil slice is kept")

	ev.ReferringDoctors = nil
	_, err = ev.Encode()
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "/referring_doctors", ve.Field)

	order := events.OrderHistoryEvent{OrderID: "ORD-1", Status: events.OrderPlaced, Patient: events.OrderPatient{Ref: "HN-1"},
		ReferringDoctors: []events.OrderDoctor{{ExternalUserID: "um-1"}}, OccurredAt: time.Now()}
	_, err = order.Encode()
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "/sequence", ve.Field)

	login := events.InternalLogin{ExternalUserID: "um-1", Outcome: events.LoginFailure, Method: events.LoginOTP, OccurredAt: time.Now()}
	_, err = login.Encode()
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "/source_ip", ve.Field)

	user := events.UserCreated{ExternalUserID: "um-1", UserType: events.UserTypeAdmin, Name: "Admin", UpdatedAt: time.Now(), Locale: "fr"}
	_, err = user.Encode()
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "/locale", ve.Field)
}

func TestCloudEventMetadata(t *testing.T) {
	at := time.Date(2026, 11, 24, 14, 5, 33, 120000000, time.FixedZone("ICT", 7*3600))
	md := events.CloudEventMetadata("evt-123", events.TypeSendNotification, "rfd-notify", at)
	assert.Equal(t, map[string]string{
		"ce_id":          "evt-123",
		"ce_type":        "rfd.send-notification.v1",
		"ce_source":      "rfd-notify",
		"ce_time":        "2026-11-24T07:05:33.12Z",
		"ce_specversion": "1.0",
	}, md)
	assert.Equal(t, events.HeaderID, "ce_id")

	for typ, want := range map[string]string{
		events.TypeCheckupEvent:      "rfd.checkup.v1",
		events.TypeOrderHistoryEvent: "rfd.order-history.v1",
		events.TypeUserCreated:       "rfd.user-created.v1",
		events.TypeInternalLogin:     "rfd.internal-login.v1",
	} {
		assert.Equal(t, want, typ)
	}
}
