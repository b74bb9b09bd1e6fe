package api_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/delivery"
)

// seedDoctorA gives doc-a a corrected result (CHK-1, whose first version's
// notification is superseded), a critical result (CHK-2), and an order of
// CHK-1 that completed, with a late event.
func seedDoctorA(f *fixture) {
	f.t.Helper()
	f.registerDoctor("doc-a")
	f.result("CHK-1", 1, "final", false, "Somchai Jaidee", "doc-a")
	f.result("CHK-1", 2, "corrected", false, "Somchai Jaidee", "doc-a")
	f.result("CHK-2", 1, "final", true, "Malee Sukjai", "doc-a")
	f.order("ORD-CHK-1", 2, "completed", "doc-a")
	f.order("ORD-CHK-1", 1, "placed", "doc-a") // late: timeline only
}

func TestDoctorPortal(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		seedDoctorA(f)
		tok := f.token("doc-a")

		t.Run("me", func(t *testing.T) {
			var me api.Me
			f.do(http.MethodGet, "/v1/me", tok, nil).ok(t, http.StatusOK, &me)
			if me.ExternalUserID != "doc-a" || me.Name != "Dr. doc-a" || !me.Active || me.TimeZone != "Asia/Bangkok" {
				t.Fatalf("me = %+v", me)
			}
			if !slices.Contains(me.Preferences.Channels.CriticalResults, domain.ChannelInApp) || me.Preferences.Digest != "off" {
				t.Fatalf("default preferences = %+v", me.Preferences)
			}
			if me.Devices == nil || len(me.Devices) != 0 {
				t.Fatalf("devices = %v", me.Devices)
			}
		})

		t.Run("preferences", func(t *testing.T) {
			var p api.Preferences
			f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{
				"channels":       map[string]any{"critical_results": []string{"sms"}, "results": []string{}},
				"quiet_hours":    map[string]any{"start": "22:00", "end": "07:00"},
				"digest":         "daily@18:00",
				"fallback_order": []string{"push", "sms"},
			}).ok(t, http.StatusOK, &p)
			if !slices.Equal(p.Channels.CriticalResults, []domain.Channel{domain.ChannelInApp, domain.ChannelSMS}) {
				t.Errorf("critical results = %v: in_app must stay", p.Channels.CriticalResults)
			}
			if len(p.Channels.Results) != 0 || !slices.Equal(p.Channels.Orders, []domain.Channel{domain.ChannelInApp}) {
				t.Errorf("results %v, orders %v", p.Channels.Results, p.Channels.Orders)
			}
			if p.QuietHours != (api.QuietHours{Start: "22:00", End: "07:00"}) || p.Digest != "daily@18:00" ||
				!slices.Equal(p.FallbackOrder, []domain.Channel{domain.ChannelPush, domain.ChannelSMS}) {
				t.Errorf("preferences = %+v", p)
			}
			// Stored: what the notifier reads is what was answered.
			stored, err := notify.PreferencesOf(t.Context(), f.env.DB, f.str(`SELECT id FROM doctors WHERE external_user_id = 'doc-a'`))
			if err != nil {
				t.Fatal(err)
			}
			if stored.QuietHours.Start != "22:00" || !slices.Equal(stored.ChannelsFor(domain.CategoryCriticalResults), p.Channels.CriticalResults) {
				t.Errorf("stored = %+v", stored)
			}
			// A partial patch keeps the rest.
			f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"digest": "off"}).ok(t, http.StatusOK, &p)
			if p.QuietHours.Start != "22:00" || p.Digest != "off" {
				t.Errorf("after partial patch = %+v", p)
			}
			// Clearing the quiet hours.
			f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"quiet_hours": map[string]any{"start": "", "end": ""}}).ok(t, http.StatusOK, &p)
			if p.QuietHours != (api.QuietHours{}) {
				t.Errorf("quiet hours not cleared: %+v", p.QuietHours)
			}
			// Refused by domain.Preferences.Validate, at its field.
			pr := f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"quiet_hours": map[string]any{"start": "22:00", "end": ""}}).
				problem(t, http.StatusUnprocessableEntity)
			if !pr.hasLocation("body.quiet_hours") {
				t.Errorf("locations %+v", pr.Errors)
			}
			// Refused by the schema.
			pr = f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"channels": map[string]any{"results": []string{"pigeon"}}}).
				problem(t, http.StatusUnprocessableEntity)
			if len(pr.Errors) == 0 || !strings.HasPrefix(pr.Errors[0].Location, "body.channels.results") {
				t.Errorf("locations %+v", pr.Errors)
			}
			f.do(http.MethodPatch, "/v1/me/preferences", tok, map[string]any{"digest": "weekly"}).problem(t, http.StatusUnprocessableEntity)
		})

		t.Run("devices", func(t *testing.T) {
			token := "fcm-token-doc-a:APA91bHexample"
			var d api.Device
			f.do(http.MethodPut, "/v1/me/devices/"+token, tok, map[string]any{"platform": "android"}).ok(t, http.StatusCreated, &d)
			if d.Token != token || d.Platform != "android" || d.Disabled {
				t.Fatalf("device = %+v", d)
			}
			f.do(http.MethodPut, "/v1/me/devices/"+token, tok, map[string]any{"platform": "ios"}).ok(t, http.StatusOK, &d)
			if d.Platform != "ios" {
				t.Fatalf("device = %+v", d)
			}
			// A token the push provider declared dead comes back when registered again.
			if _, err := f.env.DB.ExecContext(t.Context(), `UPDATE devices SET disabled_at = ?, disabled_reason = 'UNREGISTERED' WHERE token = ?`, time.Now().UTC(), token); err != nil {
				t.Fatal(err)
			}
			var me api.Me
			f.do(http.MethodGet, "/v1/me", tok, nil).ok(t, http.StatusOK, &me)
			if len(me.Devices) != 1 || !me.Devices[0].Disabled || me.Devices[0].DisabledReason != "UNREGISTERED" {
				t.Fatalf("devices = %+v", me.Devices)
			}
			f.do(http.MethodPut, "/v1/me/devices/"+token, tok, map[string]any{"platform": "ios"}).ok(t, http.StatusOK, &d)
			if d.Disabled {
				t.Fatalf("not re-enabled: %+v", d)
			}
			f.do(http.MethodDelete, "/v1/me/devices/"+token, tok, nil).ok(t, http.StatusNoContent, nil)
			f.do(http.MethodDelete, "/v1/me/devices/"+token, tok, nil).problem(t, http.StatusNotFound)
			f.do(http.MethodPut, "/v1/me/devices/"+token, tok, map[string]any{"platform": "fax"}).problem(t, http.StatusUnprocessableEntity)
			f.do(http.MethodPut, "/v1/me/devices/short", tok, map[string]any{"platform": "ios"}).problem(t, http.StatusUnprocessableEntity)
		})

		ids := f.notificationIDs("doc-a", "")
		supersededID := f.str(`SELECT id FROM notifications WHERE checkup_id = 'CHK-1' AND result_version = 1`)
		criticalID := f.str(`SELECT id FROM notifications WHERE checkup_id = 'CHK-2'`)
		correctedID := f.str(`SELECT id FROM notifications WHERE checkup_id = 'CHK-1' AND result_version = 2`)

		t.Run("dashboard before", func(t *testing.T) {
			var d api.Dashboard
			f.do(http.MethodGet, "/v1/dashboard", tok, nil).ok(t, http.StatusOK, &d)
			if d.UnreadCount != len(ids) || d.UnacknowledgedCritical != 1 || d.NewResultsLast7Days != 3 {
				t.Errorf("dashboard = %+v (notifications %d)", d, len(ids))
			}
			if d.OrdersByStatus["completed"] != 1 || d.OrdersByStatus["placed"] != 0 || len(d.OrdersByStatus) != 6 {
				t.Errorf("orders by status = %v", d.OrdersByStatus)
			}
		})

		t.Run("list", func(t *testing.T) {
			var page api.NotificationPage
			f.do(http.MethodGet, "/v1/notifications", tok, nil).ok(t, http.StatusOK, &page)
			if len(page.Items) != len(ids) || page.NextCursor != "" {
				t.Fatalf("%d items (cursor %q), want %d", len(page.Items), page.NextCursor, len(ids))
			}
			for i, it := range page.Items {
				if it.ID != ids[i] {
					t.Fatalf("item %d = %s, want %s (newest first)", i, it.ID, ids[i])
				}
			}
			filter := func(q string, want ...string) {
				t.Helper()
				var p api.NotificationPage
				f.do(http.MethodGet, "/v1/notifications?"+q, tok, nil).ok(t, http.StatusOK, &p)
				var got []string
				for _, it := range p.Items {
					got = append(got, it.ID)
				}
				if !slices.Equal(got, want) {
					t.Errorf("?%s = %v, want %v", q, got, want)
				}
			}
			filter("category=critical_results", criticalID)
			filter("priority=critical", criticalID)
			filter("category=results&priority=high", correctedID)
			filter("since=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)))
			filter("unread=true", ids...)
		})

		t.Run("detail", func(t *testing.T) {
			var n api.NotificationDetail
			f.do(http.MethodGet, "/v1/notifications/"+supersededID, tok, nil).ok(t, http.StatusOK, &n)
			if n.State != domain.StateSuperseded || !strings.Contains(n.StateReason, "version 2") {
				t.Errorf("state %q (%q), want superseded", n.State, n.StateReason)
			}
			if !strings.Contains(n.Body, "Somchai Jaidee") || n.Context.PatientName != "Somchai Jaidee" || n.Context.TestName != "Potassium" {
				t.Errorf("detail lacks the patient: %+v", n)
			}
			if n.ResultVersion == nil || *n.ResultVersion != 1 || n.CheckupID == nil || *n.CheckupID != "CHK-1" {
				t.Errorf("detail = %+v", n)
			}
			if len(n.Deliveries) == 0 {
				t.Errorf("no deliveries")
			}
			f.do(http.MethodGet, "/v1/notifications/00000000-0000-0000-0000-000000000000", tok, nil).problem(t, http.StatusNotFound)
		})

		t.Run("read", func(t *testing.T) {
			var s1, s2 api.NotificationSummary
			f.do(http.MethodPost, "/v1/notifications/"+correctedID+"/read", tok, nil).ok(t, http.StatusOK, &s1)
			if s1.ReadAt == nil {
				t.Fatal("read_at not set")
			}
			f.do(http.MethodPost, "/v1/notifications/"+correctedID+"/read", tok, nil).ok(t, http.StatusOK, &s2)
			if s2.ReadAt == nil || !s2.ReadAt.Equal(*s1.ReadAt) {
				t.Errorf("second read moved read_at: %v then %v", s1.ReadAt, s2.ReadAt)
			}
			if st := f.str(`SELECT status FROM deliveries WHERE id = ?`, notify.DeliveryID(correctedID, domain.ChannelInApp)); st != delivery.StatusRead {
				t.Errorf("in-app delivery %s, want read", st)
			}
			f.do(http.MethodPost, "/v1/notifications/00000000-0000-0000-0000-000000000000/read", tok, nil).problem(t, http.StatusNotFound)
		})

		t.Run("acknowledge", func(t *testing.T) {
			var a1, a2 api.Acknowledgement
			f.do(http.MethodPost, "/v1/notifications/"+criticalID+"/acknowledge", tok, map[string]any{"note": "Called the patient in."}).
				ok(t, http.StatusOK, &a1)
			docID := f.str(`SELECT id FROM doctors WHERE external_user_id = 'doc-a'`)
			if a1.AcknowledgedBy.ID != docID || a1.AcknowledgedBy.Name != "Dr. doc-a" || a1.Note != "Called the patient in." || a1.AcknowledgedAt.IsZero() {
				t.Fatalf("ack = %+v", a1)
			}
			// Idempotent: the first acknowledgement stands.
			f.do(http.MethodPost, "/v1/notifications/"+criticalID+"/acknowledge", tok, map[string]any{"note": "again"}).ok(t, http.StatusOK, &a2)
			if a2.Note != a1.Note || !a2.AcknowledgedAt.Equal(a1.AcknowledgedAt) {
				t.Errorf("second ack changed it: %+v then %+v", a1, a2)
			}
			// Without a body.
			f.do(http.MethodPost, "/v1/notifications/"+criticalID+"/acknowledge", tok, nil).ok(t, http.StatusOK, &a2)
			if st := f.str(`SELECT status FROM deliveries WHERE id = ?`, notify.DeliveryID(criticalID, domain.ChannelInApp)); st != delivery.StatusAcknowledged {
				t.Errorf("in-app delivery %s, want acknowledged", st)
			}
			var n api.NotificationDetail
			f.do(http.MethodGet, "/v1/notifications/"+criticalID, tok, nil).ok(t, http.StatusOK, &n)
			if n.Acknowledgement == nil || n.Acknowledgement.Note != a1.Note || n.ReadAt == nil {
				t.Errorf("detail after ack = %+v", n)
			}
			f.do(http.MethodPost, "/v1/notifications/"+correctedID+"/acknowledge", tok, nil).problem(t, http.StatusConflict)
			f.do(http.MethodPost, "/v1/notifications/"+criticalID+"/acknowledge", tok, map[string]any{"note": strings.Repeat("x", 1001)}).
				problem(t, http.StatusUnprocessableEntity)
		})

		t.Run("read all", func(t *testing.T) {
			unread := len(f.notificationIDs("doc-a", "n.read_at IS NULL"))
			var r api.ReadAllResult
			f.do(http.MethodPost, "/v1/notifications/read-all", tok, nil).ok(t, http.StatusOK, &r)
			if r.Marked != int64(unread) || unread == 0 {
				t.Errorf("marked %d, want %d", r.Marked, unread)
			}
			var d api.Dashboard
			f.do(http.MethodGet, "/v1/dashboard", tok, nil).ok(t, http.StatusOK, &d)
			if d.UnreadCount != 0 || d.UnacknowledgedCritical != 0 {
				t.Errorf("dashboard after = %+v", d)
			}
			if n := f.scalar(`SELECT count(*) FROM deliveries WHERE channel = 'in_app' AND status NOT IN ('read', 'acknowledged') AND notification_id IN (SELECT n.id FROM notifications n JOIN doctors d ON d.id = n.doctor_id WHERE d.external_user_id = 'doc-a')`); n != 0 {
				t.Errorf("%d in-app deliveries not read", n)
			}
			f.do(http.MethodPost, "/v1/notifications/read-all", tok, nil).ok(t, http.StatusOK, &r)
			if r.Marked != 0 {
				t.Errorf("second read-all marked %d", r.Marked)
			}
		})

		t.Run("orders", func(t *testing.T) {
			var page api.OrderPage
			f.do(http.MethodGet, "/v1/orders", tok, nil).ok(t, http.StatusOK, &page)
			if len(page.Items) != 1 || page.Items[0].ID != "ORD-CHK-1" || page.Items[0].Status != "completed" || page.Items[0].Seq != 2 {
				t.Fatalf("orders = %+v", page)
			}
			f.do(http.MethodGet, "/v1/orders?status=placed", tok, nil).ok(t, http.StatusOK, &page)
			if len(page.Items) != 0 {
				t.Errorf("status filter: %+v", page)
			}
			f.do(http.MethodGet, "/v1/orders?patient_ref=PT-ORD-CHK-1", tok, nil).ok(t, http.StatusOK, &page)
			if len(page.Items) != 1 {
				t.Errorf("patient filter: %+v", page)
			}
			var o api.Order
			f.do(http.MethodGet, "/v1/orders/ORD-CHK-1", tok, nil).ok(t, http.StatusOK, &o)
			if o.Status != "completed" || len(o.Timeline) != 2 || !slices.Equal(o.CheckupIDs, []string{"CHK-1"}) {
				t.Fatalf("order = %+v", o)
			}
			if o.Timeline[0].Seq != 1 || o.Timeline[0].Applied || o.Timeline[0].Status != "placed" || !o.Timeline[1].Applied {
				t.Errorf("timeline = %+v", o.Timeline)
			}
			f.do(http.MethodGet, "/v1/orders/ORD-NOPE", tok, nil).problem(t, http.StatusNotFound)
		})

		t.Run("checkup", func(t *testing.T) {
			var c api.Checkup
			f.do(http.MethodGet, "/v1/checkups/CHK-1", tok, nil).ok(t, http.StatusOK, &c)
			if c.PatientRef != "PT-CHK-1" || c.OrderID != "ORD-CHK-1" || len(c.ResultVersions) != 2 {
				t.Fatalf("checkup = %+v", c)
			}
			v1, v2 := c.ResultVersions[0], c.ResultVersions[1]
			if v1.Version != 1 || v1.Current || v2.Version != 2 || !v2.Current || v2.Status != "corrected" {
				t.Errorf("versions = %+v", c.ResultVersions)
			}
			if len(v2.Tests) != 1 || v2.Tests[0].Value != "6.2" || v2.Tests[0].Unit != "mmol/L" || v2.Summary == "" {
				t.Errorf("v2 = %+v", v2)
			}
			var crit api.Checkup
			f.do(http.MethodGet, "/v1/checkups/CHK-2", tok, nil).ok(t, http.StatusOK, &crit)
			if !crit.ResultVersions[0].Critical {
				t.Errorf("CHK-2 = %+v", crit)
			}
			f.do(http.MethodGet, "/v1/checkups/CHK-NOPE", tok, nil).problem(t, http.StatusNotFound)
		})
	})
}
