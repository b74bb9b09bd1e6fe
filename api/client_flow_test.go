package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/api/client"
	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/events"
)

// TestGeneratedClientFlows drives the doctor portal's main flows through the
// client that oapi-codegen generates from the checked-in OpenAPI 3.0 spec
// (api/client), against a real server and database — what an integrator
// building from api/openapi-3.0.yaml gets. The data comes from the real
// consumers and the notifier, as in production.
func TestGeneratedClientFlows(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		seedDoctorA(f)            // CHK-1 v1 superseded by v2, critical CHK-2, order ORD-CHK-1
		f.announce("doc-a", 0, 4) // enough notifications for several pages
		c := newClient(t, f.url, f.token("doc-a"))
		ctx := t.Context()

		t.Run("me", func(t *testing.T) {
			r, err := c.GetMeWithResponse(ctx)
			me := want(t, r.JSON200, r.HTTPResponse, r.Body, err, http.StatusOK)
			if me.ExternalUserId != "doc-a" || me.Name != "Dr. doc-a" || !me.Active || me.TimeZone != "Asia/Bangkok" {
				t.Errorf("me = %+v", me)
			}
			if me.Devices == nil || len(*me.Devices) != 0 {
				t.Errorf("devices = %v", me.Devices)
			}
		})

		t.Run("preferences", func(t *testing.T) {
			digest := "daily@18:00"
			r, err := c.UpdatePreferencesWithResponse(ctx, client.PreferencesPatch{
				Channels:   &client.ChannelPreferencesPatch{CriticalResults: &[]client.ChannelPreferencesPatchCriticalResults{client.ChannelPreferencesPatchCriticalResultsSms}},
				QuietHours: &client.QuietHours{Start: "22:00", End: "07:00"},
				Digest:     &digest,
			})
			p := want(t, r.JSON200, r.HTTPResponse, r.Body, err, http.StatusOK)
			crit := p.Channels.CriticalResults
			if crit == nil || !slices.Equal(*crit, []client.ChannelPreferencesCriticalResults{client.ChannelPreferencesCriticalResultsInApp, client.ChannelPreferencesCriticalResultsSms}) {
				t.Errorf("critical results = %v: in_app must stay", deref(crit))
			}
			if p.QuietHours != (client.QuietHours{Start: "22:00", End: "07:00"}) || p.Digest != digest {
				t.Errorf("preferences = %+v", p)
			}
			// A value the schema refuses: 422 with the field's location.
			bad := "weekly"
			r, err = c.UpdatePreferencesWithResponse(ctx, client.PreferencesPatch{Digest: &bad})
			pr := want(t, r.ApplicationproblemJSON422, r.HTTPResponse, r.Body, err, http.StatusUnprocessableEntity)
			if !hasError(pr, "body.digest", "off, hourly or daily@HH:MM") {
				t.Errorf("problem %s", r.Body)
			}
		})

		t.Run("devices", func(t *testing.T) {
			token := "fcm-token-doc-a:APA91bHclient"
			r, err := c.PutDeviceWithResponse(ctx, token, client.DeviceRegistration{Platform: client.DeviceRegistrationPlatformAndroid})
			d := want(t, r.JSON201, r.HTTPResponse, r.Body, err, http.StatusCreated)
			if d.Token != token || string(d.Platform) != "android" || d.Disabled {
				t.Errorf("device = %+v", d)
			}
			r, err = c.PutDeviceWithResponse(ctx, token, client.DeviceRegistration{Platform: client.DeviceRegistrationPlatformIos})
			if d = want(t, r.JSON200, r.HTTPResponse, r.Body, err, http.StatusOK); string(d.Platform) != "ios" {
				t.Errorf("device = %+v", d)
			}
			me, err := c.GetMeWithResponse(ctx)
			if m := want(t, me.JSON200, me.HTTPResponse, me.Body, err, http.StatusOK); m.Devices == nil || len(*m.Devices) != 1 || (*m.Devices)[0].Token != token {
				t.Errorf("devices = %+v", deref(m.Devices))
			}
			// A path parameter the schema refuses, with its pattern's description.
			r, err = c.PutDeviceWithResponse(ctx, "not a push token!!", client.DeviceRegistration{Platform: client.DeviceRegistrationPlatformIos})
			if pr := want(t, r.ApplicationproblemJSON422, r.HTTPResponse, r.Body, err, http.StatusUnprocessableEntity); !hasError(pr, "path.token", "letters, digits") {
				t.Errorf("problem %s", r.Body)
			}
			del, err := c.DeleteDeviceWithResponse(ctx, token)
			if err != nil || del.StatusCode() != http.StatusNoContent {
				t.Fatalf("delete: %v %d %s", err, del.StatusCode(), del.Body)
			}
			del, err = c.DeleteDeviceWithResponse(ctx, token)
			want(t, del.ApplicationproblemJSON404, del.HTTPResponse, del.Body, err, http.StatusNotFound)
		})

		ids := f.notificationIDs("doc-a", "")
		criticalID := f.str(`SELECT id FROM notifications WHERE checkup_id = 'CHK-2'`)
		correctedID := f.str(`SELECT id FROM notifications WHERE checkup_id = 'CHK-1' AND result_version = 2`)

		t.Run("list with cursor", func(t *testing.T) {
			limit := int64(3)
			var got []string
			var cursor *string
			pages := 0
			for {
				r, err := c.ListNotificationsWithResponse(ctx, &client.ListNotificationsParams{Limit: &limit, Cursor: cursor})
				page := want(t, r.JSON200, r.HTTPResponse, r.Body, err, http.StatusOK)
				pages++
				for _, it := range deref(page.Items) {
					got = append(got, it.Id)
				}
				if page.NextCursor == nil || *page.NextCursor == "" {
					break
				}
				if pages > len(ids) {
					t.Fatalf("no end after %d pages", pages)
				}
				cursor = page.NextCursor
			}
			if !slices.Equal(got, ids) || pages != (len(ids)+2)/3 {
				t.Errorf("%d pages: %v, want %v (newest first)", pages, got, ids)
			}
			cat := client.ListNotificationsParamsCategoryCriticalResults
			prio := client.ListNotificationsParamsPriorityCritical
			r, err := c.ListNotificationsWithResponse(ctx, &client.ListNotificationsParams{Category: &cat, Priority: &prio})
			page := want(t, r.JSON200, r.HTTPResponse, r.Body, err, http.StatusOK)
			if items := deref(page.Items); len(items) != 1 || items[0].Id != criticalID {
				t.Errorf("critical results = %+v", items)
			}
		})

		t.Run("get one", func(t *testing.T) {
			r, err := c.GetNotificationWithResponse(ctx, criticalID)
			n := want(t, r.JSON200, r.HTTPResponse, r.Body, err, http.StatusOK)
			if n.Id != criticalID || string(n.Category) != "critical_results" || n.CheckupId == nil || *n.CheckupId != "CHK-2" ||
				deref(n.Context.PatientName) != "Malee Sukjai" || !strings.Contains(n.Body, "Malee Sukjai") || n.Acknowledgement != nil {
				t.Errorf("detail = %+v", n)
			}
		})

		t.Run("mark read", func(t *testing.T) {
			r, err := c.ReadNotificationWithResponse(ctx, correctedID)
			s := want(t, r.JSON200, r.HTTPResponse, r.Body, err, http.StatusOK)
			if s.Id != correctedID || s.ReadAt == nil {
				t.Errorf("summary = %+v", s)
			}
		})

		t.Run("acknowledge critical", func(t *testing.T) {
			note := "Called the patient in."
			r, err := c.AcknowledgeNotificationWithResponse(ctx, criticalID, client.AcknowledgeRequest{Note: &note})
			a := want(t, r.JSON200, r.HTTPResponse, r.Body, err, http.StatusOK)
			if a.NotificationId != criticalID || a.AcknowledgedBy.Name != "Dr. doc-a" || deref(a.Note) != note || a.AcknowledgedAt.IsZero() {
				t.Errorf("ack = %+v", a)
			}
			// Idempotent: the first acknowledgement stands.
			again := "again"
			r, err = c.AcknowledgeNotificationWithResponse(ctx, criticalID, client.AcknowledgeRequest{Note: &again})
			if a2 := want(t, r.JSON200, r.HTTPResponse, r.Body, err, http.StatusOK); deref(a2.Note) != note || !a2.AcknowledgedAt.Equal(a.AcknowledgedAt) {
				t.Errorf("second ack = %+v", a2)
			}
			// Only critical results are acknowledged.
			r, err = c.AcknowledgeNotificationWithResponse(ctx, correctedID, client.AcknowledgeRequest{})
			want(t, r.ApplicationproblemJSON409, r.HTTPResponse, r.Body, err, http.StatusConflict)
		})

		t.Run("dashboard", func(t *testing.T) {
			r, err := c.GetDashboardWithResponse(ctx)
			d := want(t, r.JSON200, r.HTTPResponse, r.Body, err, http.StatusOK)
			// Read: the corrected result; acknowledging the critical one reads it too.
			if d.UnreadCount != int64(len(ids)-2) || d.UnacknowledgedCritical != 0 || d.NewResultsLast7Days != 3 || d.OrdersByStatus["completed"] != 1 {
				t.Errorf("dashboard = %+v (notifications %d)", d, len(ids))
			}
		})

		t.Run("orders", func(t *testing.T) {
			r, err := c.ListOrdersWithResponse(ctx, &client.ListOrdersParams{})
			page := want(t, r.JSON200, r.HTTPResponse, r.Body, err, http.StatusOK)
			if items := deref(page.Items); len(items) != 1 || items[0].Id != "ORD-CHK-1" || string(items[0].Status) != "completed" {
				t.Fatalf("orders = %+v", items)
			}
			o, err := c.GetOrderWithResponse(ctx, "ORD-CHK-1")
			order := want(t, o.JSON200, o.HTTPResponse, o.Body, err, http.StatusOK)
			tl := deref(order.Timeline)
			if string(order.Status) != "completed" || len(tl) != 2 || tl[0].Seq != 1 || tl[0].Applied || !tl[1].Applied ||
				!slices.Equal(deref(order.CheckupIds), []string{"CHK-1"}) {
				t.Errorf("order = %+v, timeline %+v", order, tl)
			}
		})

		t.Run("checkup", func(t *testing.T) {
			r, err := c.GetCheckupWithResponse(ctx, "CHK-1")
			ck := want(t, r.JSON200, r.HTTPResponse, r.Body, err, http.StatusOK)
			vs := deref(ck.ResultVersions)
			if ck.PatientRef != "PT-CHK-1" || len(vs) != 2 || vs[0].Current || !vs[1].Current || string(vs[1].Status) != "corrected" ||
				len(deref(vs[1].Tests)) != 1 || deref(vs[1].Tests)[0].Value != "6.2" {
				t.Errorf("checkup = %+v, versions %+v", ck, vs)
			}
		})

		t.Run("problem+json", func(t *testing.T) {
			r, err := c.GetNotificationWithResponse(ctx, "00000000-0000-0000-0000-000000000000")
			p := want(t, r.ApplicationproblemJSON404, r.HTTPResponse, r.Body, err, http.StatusNotFound)
			if deref(p.Status) != http.StatusNotFound || deref(p.Title) == "" {
				t.Errorf("problem = %+v", p)
			}
			// Another doctor's object is not found either.
			f.registerDoctor("doc-b")
			other := newClient(t, f.url, f.token("doc-b"))
			r, err = other.GetNotificationWithResponse(ctx, criticalID)
			want(t, r.ApplicationproblemJSON404, r.HTTPResponse, r.Body, err, http.StatusNotFound)
			// No token.
			anon := newClient(t, f.url, "")
			me, err := anon.GetMeWithResponse(ctx)
			if p := want(t, me.ApplicationproblemJSON401, me.HTTPResponse, me.Body, err, http.StatusUnauthorized); deref(p.Status) != http.StatusUnauthorized {
				t.Errorf("problem = %+v", p)
			}
		})
	})
}

// newClient is the generated client for base, sending token as the doctor's
// bearer token (none when empty).
func newClient(t *testing.T, base, token string) *client.ClientWithResponses {
	t.Helper()
	c, err := client.NewClientWithResponses(base, client.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// want checks a generated client's answer has status and its decoded body
// (the response's field for that status) is there, and returns it.
func want[T any](t *testing.T, v *T, resp *http.Response, body []byte, err error, status int) *T {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
	}
	if v == nil {
		t.Fatalf("%s %s: %d %s (Content-Type %q) not decoded", resp.Request.Method, resp.Request.URL.Path, status, body, resp.Header.Get("Content-Type"))
	}
	return v
}

func hasError(p *client.ErrorModel, location, message string) bool {
	for _, e := range deref(p.Errors) {
		if deref(e.Location) == location && strings.Contains(deref(e.Message), message) {
			return true
		}
	}
	return false
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// TestGeneratedClientIngestsEvents: an integrator's Go client, generated by
// stock oapi-codegen, has one method per inbound contract taking that
// contract's type, and what it sends is accepted by the contract's decoder
// and published to the contract's topic; a breach of the contract is the
// typed 422 naming the field.
func TestGeneratedClientIngestsEvents(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		cfg := f.env.Config
		f.env.EnsureTopics(t, cfg.TopicUserCreated, cfg.TopicCheckupEvents, cfg.TopicOrderHistoryEvents, cfg.TopicInternalLogin)
		c := newClient(t, f.url, f.apiKey("lab feed", auth.ScopeEventsCheckup, auth.ScopeEventsOrderHistory, auth.ScopeEventsUserCreated, auth.ScopeEventsInternalLogin))
		ctx := t.Context()
		at := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
		ptr := func(s string) *string { return &s }

		users := f.subscribe(cfg.TopicUserCreated)
		uc, err := c.IngestUserCreatedWithResponse(ctx, &client.IngestUserCreatedParams{CeId: ptr("uc-gen-1")}, client.InboundUserCreated{
			ExternalUserId: "doc-gen", UserType: "referring_doctor", Name: "Dr. Generated", Email: ptr("gen@clinic.example"), UpdatedAt: at,
		})
		if acc := want(t, uc.JSON202, uc.HTTPResponse, uc.Body, err, http.StatusAccepted); acc.Id != "uc-gen-1" || acc.Topic != cfg.TopicUserCreated {
			t.Errorf("accepted = %+v", acc)
		}
		if u, err := events.DecodeUserCreated(receive(t, users).Payload); err != nil || u.ExternalUserID != "doc-gen" || u.Email != "gen@clinic.example" {
			t.Errorf("published user %+v: %v", u, err)
		}

		checkups := f.subscribe(cfg.TopicCheckupEvents)
		ev := client.InboundCheckupEvent{
			EventType: "result_available", CheckupId: "CHK-GEN-1", Patient: client.InboundPatient{Ref: "PT-GEN-1"},
			ReferringDoctors: &[]client.InboundReferringDoctor{{ExternalUserId: "doc-gen"}}, OccurredAt: at,
			Result: &client.InboundResult{Version: 1, Status: "final", Tests: &[]client.InboundTest{{Code: "K", Name: "Potassium", Value: "4.1"}}},
		}
		ce, err := c.IngestCheckupEventWithResponse(ctx, &client.IngestCheckupEventParams{IdempotencyKey: ptr("chk-gen-1")}, ev)
		if acc := want(t, ce.JSON202, ce.HTTPResponse, ce.Body, err, http.StatusAccepted); acc.Type != events.TypeCheckupEvent || acc.Topic != cfg.TopicCheckupEvents {
			t.Errorf("accepted = %+v", acc)
		}
		if got, err := events.DecodeCheckupEvent(receive(t, checkups).Payload); err != nil || got.CheckupID != "CHK-GEN-1" || got.Result == nil || got.Result.Version != 1 {
			t.Errorf("published checkup %+v: %v", got, err)
		}

		orders := f.subscribe(cfg.TopicOrderHistoryEvents)
		oh, err := c.IngestOrderHistoryEventWithResponse(ctx, nil, client.InboundOrderHistoryEvent{
			OrderId: "ORD-GEN-1", Sequence: 1, Status: "in_progress", OccurredAt: at, Patient: client.InboundOrderPatient{Ref: "PT-GEN-1"},
			ReferringDoctors: &[]client.InboundOrderDoctor{{ExternalUserId: "doc-gen"}},
		})
		want(t, oh.JSON202, oh.HTTPResponse, oh.Body, err, http.StatusAccepted)
		receive(t, orders)

		logins := f.subscribe(cfg.TopicInternalLogin)
		il, err := c.IngestInternalLoginWithResponse(ctx, nil, client.InboundInternalLogin{
			ExternalUserId: "doc-gen", Outcome: "success", OccurredAt: at, SourceIp: "203.0.113.7", Method: "password",
		})
		want(t, il.JSON202, il.HTTPResponse, il.Body, err, http.StatusAccepted)
		receive(t, logins)

		ev.CheckupId, ev.Result.Version = "CHK-GEN-2", 0
		bad, err := c.IngestCheckupEventWithResponse(ctx, nil, ev)
		if p := want(t, bad.ApplicationproblemJSON422, bad.HTTPResponse, bad.Body, err, http.StatusUnprocessableEntity); !hasError(p, "body.result.version", "") {
			t.Errorf("problem = %s", bad.Body)
		}
	})
}
