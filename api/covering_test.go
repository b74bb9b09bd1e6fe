package api_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/platform/config"
)

// TestCoveringDoctor: a doctor names a colleague who covers for them with
// PATCH /v1/me/preferences; once the colleague has accepted, and while the
// cover applies, the colleague receives a copy of each of the doctor's
// notifications (on_behalf_of the doctor), and once it has ended
// (covering: null) or before it starts, none.
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
				{"a hundred years", map[string]any{"doctor_external_id": "doc-cover", "starts_at": at(0), "ends_at": at(100 * 365 * 24 * time.Hour)}, "body.covering.ends_at"},
				{"past the cap", map[string]any{"doctor_external_id": "doc-cover", "starts_at": at(time.Hour), "ends_at": at(time.Hour + 30*24*time.Hour + time.Minute)}, "body.covering.ends_at"},
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
			if p.Covering == nil || p.Covering.DoctorID != coverID || p.Covering.DoctorExternalID != "doc-cover" || p.Covering.Status != "pending" || p.Covering.Active {
				t.Fatalf("covering = %+v", p.Covering)
			}
			f.do(http.MethodPost, "/v1/me/covering-requests/"+p.Covering.ID+"/accept", f.token("doc-cover"), nil).ok(t, http.StatusOK, nil)
			p = api.Preferences{}
			f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{}).ok(t, http.StatusOK, &p)
			if p.Covering == nil || p.Covering.Status != "accepted" || !p.Covering.Active {
				t.Fatalf("covering after acceptance = %+v", p.Covering)
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
			var acc api.CoverRequest
			f.do(http.MethodPost, "/v1/me/covering-requests/"+p.Covering.ID+"/accept", f.token("doc-cover"), nil).ok(t, http.StatusOK, &acc)
			if acc.Status != "accepted" || acc.Active {
				t.Fatalf("accepted future cover = %+v", acc)
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

// TestCoveringConsent: a cover a doctor asks for sends the covering doctor
// nothing until that doctor accepts it (or an operator approves it); the
// covering doctor may decline or withdraw; only they (or an operator) can
// decide, anyone else gets 404; a cover longer than the cap cannot be
// accepted, even one stored before the cap existed; and the request and
// each decision are audited with who made them.
func TestCoveringConsent(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		for _, ext := range []string{"doc-away", "doc-cover", "doc-other", "doc-nosy"} {
			f.registerDoctor(ext)
		}
		id := func(ext string) string { return f.str(`SELECT id FROM doctors WHERE external_user_id = ?`, ext) }
		awayID, coverID, otherID := id("doc-away"), id("doc-cover"), id("doc-other")
		tokAway, tokCover, tokNosy := f.token("doc-away"), f.token("doc-cover"), f.token("doc-nosy")
		operator := f.apiKey("ops", auth.ScopeCoveringApprove)
		crm := f.apiKey("crm", auth.ScopeNotificationsWrite, auth.ScopeDoctorsRead)
		at := func(d time.Duration) string { return time.Now().UTC().Add(d).Format(time.RFC3339) }
		copies := func(to string) int {
			return f.scalar(`SELECT COUNT(*) FROM notifications WHERE doctor_id = ? AND on_behalf_of = ?`, to, awayID)
		}
		seq := 0
		announce := func() {
			seq++
			f.now = time.Now().UTC()
			f.announce("doc-away", seq*10, 1)
		}
		ask := func(ext string, days int) api.Covering {
			var p api.Preferences
			f.do(http.MethodPatch, "/v1/me/preferences", tokAway, map[string]any{"covering": map[string]any{
				"doctor_external_id": ext, "starts_at": at(-time.Minute), "ends_at": at(time.Duration(days) * 24 * time.Hour)}}).ok(t, http.StatusOK, &p)
			if p.Covering == nil || p.Covering.Status != domain.CoverPending || p.Covering.Active {
				t.Fatalf("asked cover = %+v, want pending", p.Covering)
			}
			return *p.Covering
		}

		// Asked: nothing reaches the covering doctor yet.
		cov := ask("doc-cover", 30)
		announce()
		if n := copies(coverID); n != 0 {
			t.Fatalf("%d copies before the covering doctor accepted, want 0", n)
		}
		var list struct{ Items []api.CoverRequest }
		f.do(http.MethodGet, "/v1/me/covering-requests", tokCover, nil).ok(t, http.StatusOK, &list)
		if len(list.Items) != 1 || list.Items[0].ID != cov.ID || list.Items[0].DoctorID != awayID || list.Items[0].Status != domain.CoverPending {
			t.Fatalf("covering doctor's requests = %+v", list.Items)
		}
		// Nobody else sees or decides it.
		for _, tok := range []string{tokNosy, tokAway} {
			f.do(http.MethodGet, "/v1/me/covering-requests/"+cov.ID, tok, nil).problem(t, http.StatusNotFound)
			f.do(http.MethodPost, "/v1/me/covering-requests/"+cov.ID+"/accept", tok, nil).problem(t, http.StatusNotFound)
		}
		f.do(http.MethodPost, "/v1/admin/covering/"+cov.ID+"/approve", crm, nil).problem(t, http.StatusForbidden)
		f.do(http.MethodPost, "/v1/me/covering-requests/no-such-cover/accept", tokCover, nil).problem(t, http.StatusNotFound)
		announce()
		if n := copies(coverID); n != 0 {
			t.Fatalf("%d copies after refused decisions, want 0", n)
		}

		// Accepted: the covering doctor receives the copies, with the
		// patient's data, and can read them.
		var acc api.CoverRequest
		f.do(http.MethodPost, "/v1/me/covering-requests/"+cov.ID+"/accept", tokCover, nil).ok(t, http.StatusOK, &acc)
		if acc.Status != domain.CoverAccepted || !acc.Active || acc.DecidedAt == nil {
			t.Fatalf("accepted = %+v", acc)
		}
		f.do(http.MethodPost, "/v1/me/covering-requests/"+cov.ID+"/accept", tokCover, nil).ok(t, http.StatusOK, nil) // again: no change
		announce()
		if n := copies(coverID); n != 1 {
			t.Fatalf("%d copies after acceptance, want 1", n)
		}
		var sent api.SentNotification
		f.do(http.MethodPost, "/v1/notifications", crm, map[string]any{"doctor_external_id": "doc-away", "category": "results", "type": "result_available",
			"data": map[string]any{"patient_name": "Somchai Jaidee", "test_name": "Potassium"}}).ok(t, http.StatusCreated, &sent)
		if len(sent.Notifications) != 2 || sent.Notifications[1].DoctorID != coverID {
			t.Fatalf("sent = %+v, want the doctor's and the covering doctor's copy", sent.Notifications)
		}
		f.do(http.MethodGet, "/v1/notifications/"+sent.Notifications[1].ID, tokCover, nil).ok(t, http.StatusOK, nil)

		// Withdrawn: nothing more; a declined cover cannot be accepted.
		f.do(http.MethodPost, "/v1/me/covering-requests/"+cov.ID+"/decline", tokCover, nil).ok(t, http.StatusOK, &acc)
		if acc.Status != domain.CoverDeclined || acc.Active {
			t.Fatalf("declined = %+v", acc)
		}
		before := copies(coverID)
		announce()
		if n := copies(coverID); n != before {
			t.Fatalf("%d copies after declining, want still %d", n, before)
		}
		f.do(http.MethodPost, "/v1/me/covering-requests/"+cov.ID+"/accept", tokCover, nil).problem(t, http.StatusConflict)
		f.do(http.MethodPost, "/v1/admin/covering/"+cov.ID+"/approve", operator, nil).problem(t, http.StatusConflict)
		var me api.Me
		f.do(http.MethodGet, "/v1/me", tokAway, nil).ok(t, http.StatusOK, &me)
		if c := me.Preferences.Covering; c == nil || c.ID != cov.ID || c.Status != domain.CoverDeclined || c.Active {
			t.Fatalf("the asking doctor sees %+v, want the declined cover", c)
		}

		// An operator approves in place of the covering doctor.
		other := ask("doc-other", 7)
		announce()
		if n := copies(otherID); n != 0 {
			t.Fatalf("%d copies before approval, want 0", n)
		}
		f.do(http.MethodPost, "/v1/admin/covering/"+other.ID+"/approve", operator, nil).ok(t, http.StatusOK, &acc)
		if acc.Status != domain.CoverAccepted || acc.CoveringDoctorID != otherID {
			t.Fatalf("approved = %+v", acc)
		}
		announce()
		if n := copies(otherID); n != 1 {
			t.Fatalf("%d copies after approval, want 1", n)
		}

		// A cover stored before consent and the cap existed (the
		// migration leaves it pending) sends nothing and cannot be
		// accepted as it stands.
		legacy := "legacy-cover"
		if _, err := f.env.DB.ExecContext(context.Background(), `INSERT INTO delegations (id, doctor_id, covering_doctor_id, starts_at, ends_at, created_at)
VALUES (?, ?, ?, ?, ?, ?)`, legacy, awayID, id("doc-nosy"), time.Now().UTC().Add(-time.Hour), time.Now().UTC().Add(100*365*24*time.Hour), time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		if s := f.str(`SELECT status FROM delegations WHERE id = ?`, legacy); s != domain.CoverPending {
			t.Fatalf("a stored cover's status is %q, want pending", s)
		}
		announce()
		if n := copies(id("doc-nosy")); n != 0 {
			t.Fatalf("%d copies for an unaccepted stored cover", n)
		}
		f.do(http.MethodPost, "/v1/me/covering-requests/"+legacy+"/accept", tokNosy, nil).problem(t, http.StatusConflict)
		f.do(http.MethodPost, "/v1/admin/covering/"+legacy+"/approve", operator, nil).problem(t, http.StatusConflict)

		// Every request and decision is in the audit log, with its actor.
		type row struct{ actor, action, object string }
		var got []row
		rows, err := f.env.DB.QueryContext(context.Background(),
			`SELECT actor_type || ':' || actor_id, action, object_id FROM audit_log WHERE action LIKE 'covering.%' ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.actor, &r.action, &r.object); err != nil {
				t.Fatal(err)
			}
			got = append(got, r)
		}
		opKey := f.str(`SELECT id FROM api_keys WHERE name = 'ops'`)
		want := []row{
			{"doctor:" + awayID, "covering.request", cov.ID},
			{"doctor:" + coverID, "covering.accept", cov.ID},
			{"doctor:" + coverID, "covering.decline", cov.ID},
			{"doctor:" + awayID, "covering.request", other.ID},
			{"api_key:" + opKey, "covering.approve", other.ID},
		}
		if !slices.Equal(got, want) {
			t.Fatalf("covering audit\n%v\nwant\n%v", got, want)
		}
		if by := f.str(`SELECT decided_by FROM delegations WHERE id = ?`, other.ID); by != "api_key:"+opKey {
			t.Errorf("decided_by = %q", by)
		}
	})
}

// TestCoveringResentUnchangedKeepsAcceptance: a portal saving the doctor's
// preferences again with the same cover must not end the accepted cover
// and ask the colleague again; a changed period asks again.
func TestCoveringResentUnchangedKeepsAcceptance(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("doc-away")
		f.registerDoctor("doc-cover")
		tokAway, tokCover := f.token("doc-away"), f.token("doc-cover")
		start := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
		body := func(end time.Time) map[string]any {
			return map[string]any{"covering": map[string]any{"doctor_external_id": "doc-cover",
				"starts_at": start.Format(time.RFC3339), "ends_at": end.Format(time.RFC3339)}}
		}
		end := start.Add(7 * 24 * time.Hour)
		var p api.Preferences
		f.do(http.MethodPatch, "/v1/me/preferences", tokAway, body(end)).ok(t, http.StatusOK, &p)
		if p.Covering == nil {
			t.Fatal("no cover stored")
		}
		first := p.Covering.ID
		f.do(http.MethodPost, "/v1/me/covering-requests/"+first+"/accept", tokCover, nil).ok(t, http.StatusOK, nil)

		f.do(http.MethodPatch, "/v1/me/preferences", tokAway, body(end)).ok(t, http.StatusOK, &p)
		if p.Covering == nil || p.Covering.ID != first || p.Covering.Status != domain.CoverAccepted || !p.Covering.Active {
			t.Fatalf("after re-sending the same cover: %+v, want %s still accepted and active", p.Covering, first)
		}

		f.do(http.MethodPatch, "/v1/me/preferences", tokAway, body(end.Add(24*time.Hour))).ok(t, http.StatusOK, &p)
		if p.Covering == nil || p.Covering.ID == first || p.Covering.Status != domain.CoverPending {
			t.Fatalf("after changing the period: %+v, want a new pending cover", p.Covering)
		}
	})
}
