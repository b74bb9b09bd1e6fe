package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/config"
)

// TestCoveringDoctor: a doctor names a colleague who covers for them with
// PATCH /v1/me/preferences; while the cover applies the colleague receives
// a copy of each of the doctor's notifications (on_behalf_of the doctor),
// and once it has ended (covering: null) or before it starts, none.
func TestCoveringDoctor(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-away")
		f.registerDoctor("doc-cover")
		f.registerDoctor("doc-other")
		f.consume(config.ConsumerUserCreated, "rfd.user-created.v1", doctorEvent("doc-gone", "Dr. Gone", false))
		tok := f.token("doc-away")
		awayID := f.str(`SELECT id FROM doctors WHERE external_user_id = 'doc-away'`)
		coverID := f.str(`SELECT id FROM doctors WHERE external_user_id = 'doc-cover'`)
		copies := func() int {
			return f.scalar(`SELECT COUNT(*) FROM notifications WHERE doctor_id = ? AND on_behalf_of = ?`, coverID, awayID)
		}
		patch := func(covering any) response {
			return f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"covering": covering})
		}
		at := func(d time.Duration) string { return f.now.Add(d).Format(time.RFC3339) }

		t.Run("refused", func(t *testing.T) {
			for _, c := range []struct {
				name     string
				covering map[string]any
				loc      string
			}{
				{"ends before it starts", map[string]any{"doctor_external_id": "doc-cover", "starts_at": at(time.Hour), "ends_at": at(-time.Hour)}, "body.covering.ends_at"},
				{"ends when it starts", map[string]any{"doctor_external_id": "doc-cover", "starts_at": at(time.Hour), "ends_at": at(time.Hour)}, "body.covering.ends_at"},
				{"ended", map[string]any{"doctor_external_id": "doc-cover", "starts_at": at(-48 * time.Hour), "ends_at": at(-24 * time.Hour)}, "body.covering.ends_at"},
				{"themself", map[string]any{"doctor_external_id": "doc-away", "starts_at": at(0), "ends_at": at(time.Hour)}, "body.covering.doctor_external_id"},
				{"themself by id", map[string]any{"doctor_id": awayID, "starts_at": at(0), "ends_at": at(time.Hour)}, "body.covering.doctor_id"},
				{"unknown doctor", map[string]any{"doctor_external_id": "nobody", "starts_at": at(0), "ends_at": at(time.Hour)}, "body.covering.doctor_external_id"},
				{"unknown doctor id", map[string]any{"doctor_id": "nobody", "starts_at": at(0), "ends_at": at(time.Hour)}, "body.covering.doctor_id"},
				{"inactive doctor", map[string]any{"doctor_external_id": "doc-gone", "starts_at": at(0), "ends_at": at(time.Hour)}, "body.covering.doctor_external_id"},
				{"no doctor", map[string]any{"starts_at": at(0), "ends_at": at(time.Hour)}, "body.covering.doctor_id"},
				{"both ids", map[string]any{"doctor_id": coverID, "doctor_external_id": "doc-cover", "starts_at": at(0), "ends_at": at(time.Hour)}, "body.covering.doctor_id"},
				{"no end", map[string]any{"doctor_external_id": "doc-cover", "starts_at": at(0)}, "body.covering"},
				{"unknown field", map[string]any{"doctor_external_id": "doc-cover", "starts_at": at(0), "ends_at": at(time.Hour), "until": "ever"}, "body.covering.until"},
			} {
				p := patch(c.covering).problem(t, http.StatusUnprocessableEntity)
				if !p.hasLocation(c.loc) {
					t.Errorf("%s: %+v, want an error at %s", c.name, p.Errors, c.loc)
				}
			}
			if n := f.scalar(`SELECT COUNT(*) FROM delegations`); n != 0 {
				t.Fatalf("%d delegations stored by refused patches", n)
			}
		})

		t.Run("active", func(t *testing.T) {
			var p api.Preferences
			patch(map[string]any{"doctor_external_id": "doc-cover", "starts_at": at(-time.Hour), "ends_at": at(7 * 24 * time.Hour)}).
				ok(t, http.StatusOK, &p)
			if p.Covering == nil || p.Covering.DoctorID != coverID || p.Covering.DoctorExternalID != "doc-cover" || !p.Covering.Active {
				t.Fatalf("covering = %+v", p.Covering)
			}
			var me api.Me
			f.do(http.MethodGet, "/v1/me", tok, nil).ok(t, http.StatusOK, &me)
			if c := me.Preferences.Covering; c == nil || c.ID != p.Covering.ID || !c.EndsAt.Equal(f.now.Add(7*24*time.Hour)) {
				t.Fatalf("GET /v1/me covering = %+v", c)
			}
			// Another patch without covering keeps it.
			p = api.Preferences{}
			f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"digest": "hourly"}).ok(t, http.StatusOK, &p)
			if p.Covering == nil || p.Covering.ID != me.Preferences.Covering.ID {
				t.Fatalf("covering after a patch without it = %+v", p.Covering)
			}

			f.announce("doc-away", 0, 1)
			if n := copies(); n != 1 {
				t.Fatalf("%d copies for the covering doctor, want 1", n)
			}
			// Nobody covers for the covering doctor: their own
			// notifications are theirs alone.
			f.announce("doc-cover", 100, 1)
			if n := f.scalar(`SELECT COUNT(*) FROM notifications WHERE on_behalf_of = ?`, coverID); n != 0 {
				t.Fatalf("%d copies on behalf of the covering doctor", n)
			}
		})

		t.Run("ended", func(t *testing.T) {
			var p api.Preferences
			patch(nil).ok(t, http.StatusOK, &p)
			if p.Covering != nil {
				t.Fatalf("covering after null = %+v", p.Covering)
			}
			// The cover ended when the API was told (its clock is the
			// wall clock); notifications made after that have no copy.
			f.now = time.Now().UTC().Add(time.Second)
			f.announce("doc-away", 1, 1)
			if n := copies(); n != 1 {
				t.Fatalf("%d copies for the covering doctor after the cover ended, want still 1", n)
			}
			if n := f.scalar(`SELECT COUNT(*) FROM delegations WHERE doctor_id = ?`, awayID); n != 1 {
				t.Fatalf("%d delegations, want the ended one kept", n)
			}
			var me api.Me
			f.do(http.MethodGet, "/v1/me", tok, nil).ok(t, http.StatusOK, &me)
			if me.Preferences.Covering != nil {
				t.Fatalf("GET /v1/me covering = %+v after it ended", me.Preferences.Covering)
			}
		})

		t.Run("future", func(t *testing.T) {
			var p api.Preferences
			patch(map[string]any{"doctor_id": coverID, "starts_at": at(24 * time.Hour), "ends_at": at(48 * time.Hour)}).
				ok(t, http.StatusOK, &p)
			if p.Covering == nil || p.Covering.DoctorExternalID != "doc-cover" || p.Covering.Active {
				t.Fatalf("future covering = %+v", p.Covering)
			}
			f.announce("doc-away", 2, 1)
			if n := copies(); n != 1 {
				t.Fatalf("%d copies before the cover starts, want still 1", n)
			}
			// A new cover replaces the future one.
			p = api.Preferences{}
			patch(map[string]any{"doctor_external_id": "doc-other", "starts_at": at(24 * time.Hour), "ends_at": at(72 * time.Hour)}).
				ok(t, http.StatusOK, &p)
			if p.Covering == nil || p.Covering.DoctorExternalID != "doc-other" {
				t.Fatalf("replaced covering = %+v", p.Covering)
			}
			// null removes a future cover.
			p = api.Preferences{}
			patch(nil).ok(t, http.StatusOK, &p)
			if p.Covering != nil {
				t.Fatalf("covering after null = %+v", p.Covering)
			}
			if n := f.scalar(`SELECT COUNT(*) FROM delegations WHERE doctor_id = ?`, awayID); n != 1 {
				t.Fatalf("%d delegations, want the ended one only", n)
			}
		})
	})
}
