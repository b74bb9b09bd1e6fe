package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/delivery"
	"github.com/rfd-notify/rfd/internal/delivery/channels/email"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"

	smtp "github.com/emersion/go-smtp"
)

var allChannels = []domain.Channel{domain.ChannelInApp, domain.ChannelEmail, domain.ChannelSMS, domain.ChannelPush, domain.ChannelWebhook}

// 1. One notification on every channel: each provider gets exactly one
// well-formed message with no patient data, and each delivery ends in its
// channel's success status.
func TestE2EHappyPathEveryChannel(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		doc := h.addDoctor("happy", prefs(map[domain.Category][]domain.Channel{domain.CategoryResults: allChannels}))
		h.addDevice(doc, "device-happy")
		_, secret := h.addEndpoint(doc, "/hooks/happy")

		nid := h.notify(doc.ExternalUserID, resultIntent("CHK-HAPPY"))
		id := func(ch domain.Channel) string { return notify.DeliveryID(nid, ch) }

		// The PHI is there, behind authentication, so its absence below means something.
		var data string
		if err := h.env.DB.QueryRowContext(context.Background(), `SELECT CAST(data AS TEXT) FROM notifications WHERE id = ?`, nid).Scan(&data); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(data, patientName) {
			t.Fatalf("notification data %s lacks the patient name the test relies on", data)
		}

		// in_app: delivered and broadcast with the notification id.
		inApp := h.waitStatus(id(domain.ChannelInApp), domain.DeliveryDelivered)
		if inApp.Provider != "in_app" || inApp.ProviderMessageID != nid {
			t.Errorf("in_app provider %q/%q", inApp.Provider, inApp.ProviderMessageID)
		}
		testenv.Eventually(t, waitLong, "in-app broadcast", func() (bool, string) {
			return len(h.inAppEventsOf(nid)) > 0, "none yet"
		})
		ev := h.inAppEventsOf(nid)[0]
		if ev.DoctorID != doc.ID || ev.Event != "notification" || ev.Seq != 1 {
			t.Errorf("in-app event %+v", ev)
		}

		// email: sent, multipart text + HTML, Message-ID from the delivery id.
		em := h.waitStatus(id(domain.ChannelEmail), domain.DeliverySent)
		wantMsgID := "<" + email.MessageIDFor(id(domain.ChannelEmail)) + ">"
		if em.Provider != email.Provider || em.ProviderMessageID != wantMsgID {
			t.Errorf("email provider %q/%q, want smtp/%s", em.Provider, em.ProviderMessageID, wantMsgID)
		}
		msgs := h.smtp.Messages()
		if len(msgs) != 1 {
			t.Fatalf("SMTP server got %d messages, want 1", len(msgs))
		}
		if msgs[0].To != doc.Email || msgs[0].From != "no-reply@rfd-notify.invalid" {
			t.Errorf("envelope %s -> %s", msgs[0].From, msgs[0].To)
		}
		m := parseMail(t, msgs[0].Data)
		if got := m.Header.Get("Message-ID"); got != wantMsgID {
			t.Errorf("Message-ID %q, want %q", got, wantMsgID)
		}
		if !slices.Equal(m.Order, []string{"text/plain", "text/html"}) {
			t.Errorf("parts %v, want text/plain then text/html", m.Order)
		}
		if !strings.Contains(m.Parts["text/plain"], nid) || !strings.Contains(m.Parts["text/html"], nid) {
			t.Errorf("email parts do not link to the notification: %q", m.Parts)
		}
		assertNoPHI(t, "email (raw)", string(msgs[0].Data))
		assertNoPHI(t, "email subject", m.Header.Get("Subject"))
		for ct, body := range m.Parts {
			assertNoPHI(t, "email "+ct, body)
		}

		// sms: sent; the status callback URL names only the delivery.
		sm := h.waitStatus(id(domain.ChannelSMS), domain.DeliverySent)
		reqs := h.twilio.RequestsFor(id(domain.ChannelSMS))
		if len(reqs) != 1 || reqs[0].SID == "" || sm.ProviderMessageID != reqs[0].SID || sm.Provider != "twilio" {
			t.Fatalf("twilio requests %+v, delivery provider %q/%q", reqs, sm.Provider, sm.ProviderMessageID)
		}
		form := reqs[0].Form
		if form.Get("To") != doc.Phone || form.Get("From") != twilioFrom || form.Get("Body") == "" {
			t.Errorf("SMS form %v", form)
		}
		assertNoPHI(t, "SMS body", form.Get("Body"))
		cb, err := url.Parse(form.Get("StatusCallback"))
		if err != nil {
			t.Fatal(err)
		}
		if got := cb.Scheme + "://" + cb.Host + cb.Path; got != h.callbackURL+delivery.SMSCallbackPath {
			t.Errorf("StatusCallback %s, want %s", got, h.callbackURL+delivery.SMSCallbackPath)
		}
		if q := cb.Query(); len(q) != 1 || len(q["d"]) != 1 || q.Get("d") != id(domain.ChannelSMS) {
			t.Errorf("StatusCallback query %q, want only d=%s", cb.RawQuery, id(domain.ChannelSMS))
		}

		// push: sent to the device.
		pu := h.waitStatus(id(domain.ChannelPush), domain.DeliverySent)
		preqs := h.fcm.requests()
		if len(preqs) != 1 || preqs[0].Token != "device-happy" {
			t.Fatalf("FCM requests %+v", preqs)
		}
		if pu.Provider != "fcm" || !strings.HasPrefix(pu.ProviderMessageID, "projects/"+fcmProject+"/messages/") {
			t.Errorf("push provider %q/%q", pu.Provider, pu.ProviderMessageID)
		}
		pushData, _ := preqs[0].Message["data"].(map[string]any)
		if pushData["notification_id"] != nid || pushData["delivery_id"] != id(domain.ChannelPush) {
			t.Errorf("push data %v", pushData)
		}
		raw, _ := json.Marshal(preqs[0].Message)
		assertNoPHI(t, "push message", string(raw))
		if _, ok := preqs[0].Message["notification"].(map[string]any); !ok {
			t.Errorf("push has no notification part: %s", raw)
		}

		// webhook: delivered; the signature verifies; webhook-id is the delivery id.
		wh := h.waitStatus(id(domain.ChannelWebhook), domain.DeliveryDelivered)
		hreqs := h.hooks.Requests("/hooks/happy")
		if len(hreqs) != 1 {
			t.Fatalf("webhook receiver got %d requests", len(hreqs))
		}
		if err := verifyWebhook(secret, hreqs[0].Header, hreqs[0].Body); err != nil {
			t.Errorf("webhook signature: %v", err)
		}
		if got := hreqs[0].Header.Get("webhook-id"); got != id(domain.ChannelWebhook) || wh.ProviderMessageID != got {
			t.Errorf("webhook-id %q, delivery provider id %q, want %s", got, wh.ProviderMessageID, id(domain.ChannelWebhook))
		}
		var payload delivery.WebhookPayload
		if err := json.Unmarshal(hreqs[0].Body, &payload); err != nil {
			t.Fatal(err)
		}
		if payload.DeliveryID != id(domain.ChannelWebhook) || payload.NotificationID != nid || payload.DoctorID != doc.ID {
			t.Errorf("webhook payload %+v", payload)
		}
		assertNoPHI(t, "webhook body", string(hreqs[0].Body))

		// One successful attempt each, and nothing more arrives.
		time.Sleep(settle)
		for _, ch := range allChannels {
			if got := h.outcomes(id(ch)); !slices.Equal(got, []string{"1:success"}) {
				t.Errorf("%s attempts %v, want one success", ch, got)
			}
		}
		if n := len(h.smtp.Messages()); n != 1 {
			t.Errorf("SMTP got %d messages", n)
		}
		if creates, reqs := h.twilio.Snapshot(); creates != 1 || len(reqs) != 1 {
			t.Errorf("twilio: %d creates, %d requests", creates, len(reqs))
		}
		if n := len(h.fcm.requests()); n != 1 {
			t.Errorf("FCM got %d requests", n)
		}
		if n := len(h.inAppEventsOf(nid)); n != 1 {
			t.Errorf("%d in-app events", n)
		}
	})
}

// 2a. Twilio answers 503 twice, then creates the message: three attempts,
// one billable message, status sent.
func TestE2ETransientFailureThenSuccess(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		doc := h.addDoctor("flaky", prefs(map[domain.Category][]domain.Channel{domain.CategoryResults: {domain.ChannelSMS}}))
		h.twilio.Set(func(f *fakeTwilio) { f.FailFirst = 2 })

		nid := h.notify(doc.ExternalUserID, resultIntent("CHK-FLAKY"))
		did := notify.DeliveryID(nid, domain.ChannelSMS)
		d := h.waitStatus(did, domain.DeliverySent)

		time.Sleep(settle)
		if got := h.outcomes(did); !slices.Equal(got, []string{"1:transient", "2:transient", "3:success"}) {
			t.Errorf("attempts %v, want two transient then a success", got)
		}
		creates, _ := h.twilio.Snapshot()
		reqs := h.twilio.RequestsFor(did)
		if creates != 1 || len(reqs) != 3 {
			t.Fatalf("twilio: %d billable creates, %d requests; want 1 and 3", creates, len(reqs))
		}
		if reqs[0].Code != 503 || reqs[1].Code != 503 || reqs[2].Code != 201 {
			t.Errorf("answers %d %d %d", reqs[0].Code, reqs[1].Code, reqs[2].Code)
		}
		if d.ProviderMessageID != reqs[2].SID || d.Attempt != 3 || d.StatusReason != "" {
			t.Errorf("delivery %+v, want sid %s after attempt 3", d, reqs[2].SID)
		}
		if d.NextAttemptAt != nil {
			t.Errorf("sent delivery still has a due time %v", d.NextAttemptAt)
		}
	})
}

// 2b. A provider outage of about a second across 20 notifications: every
// delivery ends sent (SMS) or delivered (in-app), each SMS billed once.
func TestE2EProviderOutageLosesNothing(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		const n = 20
		doc := h.addDoctor("outage", prefs(map[domain.Category][]domain.Channel{domain.CategoryResults: {domain.ChannelInApp, domain.ChannelSMS}}))
		// Twilio answers 503 with Retry-After: 1 during the outage; the
		// dispatcher waits at least that long, so four attempts outlast it.
		h.twilio.Set(func(f *fakeTwilio) { f.OutageFor = time.Second })

		var ids []string
		for i := range n {
			nid := h.notify(doc.ExternalUserID, resultIntent(fmt.Sprintf("CHK-OUT-%02d", i)))
			ids = append(ids, nid)
		}
		for _, nid := range ids {
			h.waitStatus(notify.DeliveryID(nid, domain.ChannelInApp), domain.DeliveryDelivered)
			h.waitStatus(notify.DeliveryID(nid, domain.ChannelSMS), domain.DeliverySent)
		}
		time.Sleep(settle)

		creates, reqs := h.twilio.Snapshot()
		if creates != n {
			t.Errorf("%d billable creates, want %d", creates, n)
		}
		failed := 0
		for _, r := range reqs {
			if r.Code == http.StatusServiceUnavailable {
				failed++
			}
		}
		if failed == 0 || reqs[0].Code != http.StatusServiceUnavailable {
			t.Error("no request met the outage: the test proves nothing")
		}
		sids := map[string]bool{}
		for _, nid := range ids {
			did := notify.DeliveryID(nid, domain.ChannelSMS)
			d := h.delivery(did)
			if d.Status != domain.DeliverySent || sids[d.ProviderMessageID] || d.ProviderMessageID == "" {
				t.Errorf("delivery %s: %s sid %q", did, d.Status, d.ProviderMessageID)
			}
			sids[d.ProviderMessageID] = true
			att := h.attempts(did)
			if len(att) == 0 || att[len(att)-1].Outcome != "success" || len(att) > testOptions.MaxAttempts {
				t.Errorf("delivery %s attempts %v", did, h.outcomes(did))
			}
			for _, a := range att[:len(att)-1] {
				if a.Outcome != "transient" {
					t.Errorf("delivery %s attempts %v", did, h.outcomes(did))
				}
			}
		}
		if got := h.scalar(`SELECT count(*) FROM deliveries WHERE status NOT IN ('sent', 'delivered')`); got != 0 {
			t.Errorf("%d deliveries neither sent nor delivered", got)
		}
		for _, nid := range ids {
			if got := len(h.inAppEventsOf(nid)); got != 1 {
				t.Errorf("notification %s: %d in-app events, want 1", nid, got)
			}
		}
	})
}

// 3. Permanent failures are not retried: Twilio 21211 and SMTP 550 fail the
// delivery after one attempt.
func TestE2EPermanentFailure(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		ch := map[domain.Category][]domain.Channel{domain.CategoryResults: {domain.ChannelEmail, domain.ChannelSMS}}
		doc := h.addDoctor("wrongnum", prefs(ch), func(d *domain.Doctor) { d.Phone = badNumber; d.Email = "gone@clinic.example" })
		h.smtp.Reject("gone@clinic.example", 550, smtp.EnhancedCode{5, 1, 1}, "No such user")

		nid := h.notify(doc.ExternalUserID, resultIntent("CHK-PERM"))
		smsID, emailID := notify.DeliveryID(nid, domain.ChannelSMS), notify.DeliveryID(nid, domain.ChannelEmail)
		s := h.waitStatus(smsID, domain.DeliveryFailed)
		e := h.waitStatus(emailID, domain.DeliveryFailed)
		if s.ReasonCode != delivery.ReasonInvalidDestination || !strings.Contains(s.StatusReason, "21211") {
			t.Errorf("SMS reason %s %q, want invalid_destination with the Twilio code 21211", s.ReasonCode, s.StatusReason)
		}
		if e.ReasonCode != delivery.ReasonInvalidDestination || !strings.Contains(e.StatusReason, "550") {
			t.Errorf("email reason %s %q, want invalid_destination with the SMTP code 550", e.ReasonCode, e.StatusReason)
		}

		time.Sleep(settle)
		for _, did := range []string{smsID, emailID} {
			if got := h.outcomes(did); !slices.Equal(got, []string{"1:permanent"}) {
				t.Errorf("%s attempts %v, want one permanent", did, got)
			}
			if d := h.delivery(did); d.Status != domain.DeliveryFailed || d.NextAttemptAt != nil {
				t.Errorf("%s now %s, due %v", did, d.Status, d.NextAttemptAt)
			}
		}
		if creates, reqs := h.twilio.Snapshot(); creates != 0 || len(reqs) != 1 {
			t.Errorf("twilio: %d creates, %d requests; want 0 and 1", creates, len(reqs))
		}
		if got := h.smtp.RcptCount("gone@clinic.example"); got != 1 || len(h.smtp.Messages()) != 0 {
			t.Errorf("SMTP: %d RCPT, %d messages; want 1 and 0", got, len(h.smtp.Messages()))
		}
		// Not critical: no fallback delivery.
		if got := len(h.deliveriesOf(nid)); got != 2 {
			t.Errorf("%d deliveries, want 2", got)
		}
	})
}

// 4. Retries exhausted: undelivered. A critical notification then goes out
// on the next channel of the doctor's fallback order; a normal one does not.
func TestE2EExhaustedRetriesAndCriticalFallback(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		ch := map[domain.Category][]domain.Channel{
			domain.CategoryCriticalResults: {domain.ChannelInApp, domain.ChannelSMS},
			domain.CategoryResults:         {domain.ChannelEmail},
		}
		doc := h.addDoctor("fallback", prefs(ch, domain.ChannelSMS, domain.ChannelEmail), func(d *domain.Doctor) { d.Phone = "+66899999999" })
		h.twilio.Set(func(f *fakeTwilio) { f.Down[doc.Phone] = true })

		crit := h.notify(doc.ExternalUserID, criticalIntent("CHK-CRIT"))
		smsID := notify.DeliveryID(crit, domain.ChannelSMS)
		s := h.waitStatus(smsID, domain.DeliveryUndelivered)
		if s.ReasonCode != delivery.ReasonProviderUnavailable {
			t.Errorf("reason %s %q, want provider_unavailable", s.ReasonCode, s.StatusReason)
		}
		if got := h.outcomes(smsID); !slices.Equal(got, []string{"1:transient", "2:transient", "3:transient", "4:transient"}) {
			t.Errorf("SMS attempts %v, want four transient", got)
		}
		if got := len(h.twilio.RequestsFor(smsID)); got != testOptions.MaxAttempts {
			t.Errorf("twilio saw %d requests, want %d", got, testOptions.MaxAttempts)
		}

		// The fallback: email, the next channel of the fallback order.
		emailID := notify.DeliveryID(crit, domain.ChannelEmail)
		e := h.waitStatus(emailID, domain.DeliverySent)
		if e.ProviderMessageID != "<"+email.MessageIDFor(emailID)+">" {
			t.Errorf("fallback email provider id %q", e.ProviderMessageID)
		}
		msgs := h.smtp.Messages()
		if len(msgs) != 1 || msgs[0].To != doc.Email {
			t.Fatalf("SMTP got %+v", msgs)
		}
		if got := parseMail(t, msgs[0].Data).Header.Get("Message-ID"); got != "<"+email.MessageIDFor(emailID)+">" {
			t.Errorf("fallback Message-ID %q", got)
		}
		assertNoPHI(t, "fallback email", string(msgs[0].Data))
		h.waitStatus(notify.DeliveryID(crit, domain.ChannelInApp), domain.DeliveryDelivered)

		// A normal notification whose email is greylisted forever (451):
		// undelivered after four attempts, and no fallback.
		h.smtp.Reject(doc.Email, 451, smtp.EnhancedCode{4, 3, 0}, "Try again later")
		normal := h.notify(doc.ExternalUserID, resultIntent("CHK-NORMAL"))
		nEmail := notify.DeliveryID(normal, domain.ChannelEmail)
		ne := h.waitStatus(nEmail, domain.DeliveryUndelivered)
		if ne.ReasonCode != delivery.ReasonProviderUnavailable || !strings.Contains(ne.StatusReason, "451") {
			t.Errorf("reason %s %q", ne.ReasonCode, ne.StatusReason)
		}
		time.Sleep(settle)
		if got := h.outcomes(nEmail); len(got) != testOptions.MaxAttempts {
			t.Errorf("email attempts %v, want %d", got, testOptions.MaxAttempts)
		}
		if got := h.smtp.RcptCount(doc.Email); got != 1+testOptions.MaxAttempts {
			t.Errorf("%d RCPT TO, want %d", got, 1+testOptions.MaxAttempts)
		}
		if got := len(h.deliveriesOf(normal)); got != 1 {
			t.Errorf("normal notification has %d deliveries, want 1 (no fallback)", got)
		}
		if got := len(h.deliveriesOf(crit)); got != 3 {
			t.Errorf("critical notification has %d deliveries, want 3", got)
		}
	})
}

// 5. FCM says UNREGISTERED: the device is disabled and the delivery fails;
// later pushes fail with no_device and FCM never sees that token again.
func TestE2EUnregisteredDeviceDisabled(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		ch := map[domain.Category][]domain.Channel{domain.CategoryResults: {domain.ChannelPush}}
		doc := h.addDoctor("pushdead", prefs(ch))
		h.addDevice(doc, "dead-token")
		h.fcm.mu.Lock()
		h.fcm.unregistered["dead-token"] = true
		h.fcm.mu.Unlock()

		first := notify.DeliveryID(h.notify(doc.ExternalUserID, resultIntent("CHK-P1")), domain.ChannelPush)
		d := h.waitStatus(first, domain.DeliveryFailed)
		if d.ReasonCode != delivery.ReasonInvalidDestination || !strings.Contains(d.StatusReason, "UNREGISTERED") {
			t.Errorf("reason %s %q", d.ReasonCode, d.StatusReason)
		}
		if got := h.scalar(`SELECT count(*) FROM devices WHERE token = 'dead-token' AND disabled_at IS NOT NULL`); got != 1 {
			t.Errorf("device not disabled")
		}
		if got := h.outcomes(first); !slices.Equal(got, []string{"1:permanent"}) {
			t.Errorf("attempts %v", got)
		}

		second := notify.DeliveryID(h.notify(doc.ExternalUserID, resultIntent("CHK-P2")), domain.ChannelPush)
		d2 := h.waitStatus(second, domain.DeliveryFailed)
		if d2.ReasonCode != delivery.ReasonNoDestination || !strings.Contains(d2.StatusReason, "no_device") {
			t.Errorf("reason %s %q, want no_destination (no_device)", d2.ReasonCode, d2.StatusReason)
		}
		time.Sleep(settle)
		if got := h.fcm.requestsWithToken("dead-token"); got != 1 {
			t.Errorf("FCM saw the dead token %d times, want 1", got)
		}

		// Two devices, one of them dead: the delivery is sent through the
		// live one and the dead one is disabled.
		doc2 := h.addDoctor("pushtwo", prefs(ch))
		h.addDevice(doc2, "dead-token-2")
		h.addDevice(doc2, "live-token-2")
		h.fcm.mu.Lock()
		h.fcm.unregistered["dead-token-2"] = true
		h.fcm.mu.Unlock()
		third := notify.DeliveryID(h.notify(doc2.ExternalUserID, resultIntent("CHK-P3")), domain.ChannelPush)
		h.waitStatus(third, domain.DeliverySent)
		if got := h.scalar(`SELECT count(*) FROM devices WHERE doctor_id = ? AND disabled_at IS NOT NULL`, doc2.ID); got != 1 {
			t.Errorf("%d devices of the second doctor disabled, want 1", got)
		}
		if got := h.scalar(`SELECT count(*) FROM devices WHERE token = 'live-token-2' AND disabled_at IS NULL`); got != 1 {
			t.Errorf("live device disabled")
		}
	})
}

// 6. A webhook endpoint answering 410 is disabled and its delivery fails;
// a 503 is retried with the same webhook-id, each attempt freshly signed.
func TestE2EWebhookGoneAndRetried(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		ch := map[domain.Category][]domain.Channel{domain.CategoryResults: {domain.ChannelWebhook}}
		doc := h.addDoctor("hookgone", prefs(ch))
		epID, _ := h.addEndpoint(doc, "/gone")
		h.hooks.Script("/gone", http.StatusGone)

		did := notify.DeliveryID(h.notify(doc.ExternalUserID, resultIntent("CHK-W1")), domain.ChannelWebhook)
		d := h.waitStatus(did, domain.DeliveryFailed)
		if d.ReasonCode != delivery.ReasonInvalidDestination || !strings.Contains(d.StatusReason, "gone") {
			t.Errorf("reason %s %q", d.ReasonCode, d.StatusReason)
		}
		if got := h.scalar(`SELECT count(*) FROM webhook_endpoints WHERE id = ? AND disabled_at IS NOT NULL AND disabled_reason = '410 Gone'`, epID); got != 1 {
			t.Errorf("endpoint not disabled")
		}
		time.Sleep(settle)
		if got := len(h.hooks.Requests("/gone")); got != 1 {
			t.Errorf("gone endpoint got %d requests, want 1", got)
		}
		if got := h.outcomes(did); !slices.Equal(got, []string{"1:permanent"}) {
			t.Errorf("attempts %v", got)
		}

		doc2 := h.addDoctor("hookflaky", prefs(ch))
		_, secret := h.addEndpoint(doc2, "/flaky")
		h.hooks.Script("/flaky", http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusOK)
		did2 := notify.DeliveryID(h.notify(doc2.ExternalUserID, resultIntent("CHK-W2")), domain.ChannelWebhook)
		h.waitStatus(did2, domain.DeliveryDelivered)
		reqs := h.hooks.Requests("/flaky")
		if len(reqs) != 3 {
			t.Fatalf("flaky endpoint got %d requests, want 3", len(reqs))
		}
		for i, r := range reqs {
			if r.Header.Get("webhook-id") != did2 {
				t.Errorf("request %d webhook-id %q", i, r.Header.Get("webhook-id"))
			}
			if err := verifyWebhook(secret, r.Header, r.Body); err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		}
		if got := h.outcomes(did2); !slices.Equal(got, []string{"1:transient", "2:transient", "3:success"}) {
			t.Errorf("attempts %v", got)
		}
	})
}

// 7. Suppression: a notification retracted before its commands are consumed,
// and a doctor who is inactive, get nothing.
func TestE2ESuppression(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		ch := map[domain.Category][]domain.Channel{domain.CategoryResults: allChannels}
		doc := h.addDoctor("retracted", prefs(ch))
		h.addDevice(doc, "device-retracted")
		h.addEndpoint(doc, "/hooks/retracted")

		// Retracted in the transaction that made it: the commands are
		// published only on commit, so none can be consumed before.
		retract := func(ctx context.Context, tx bun.Tx, nid string) error {
			_, err := tx.NewRaw(`UPDATE notifications SET state = 'retracted', state_reason = 'result entered in error' WHERE id = ?`, nid).Exec(ctx)
			return err
		}
		nid := h.notify(doc.ExternalUserID, resultIntent("CHK-RETRACT"), retract)

		inactive := h.addDoctor("inactive", prefs(ch), func(d *domain.Doctor) { d.Active = false })
		h.addDevice(inactive, "device-inactive")
		h.addEndpoint(inactive, "/hooks/inactive")
		nid2 := h.notify(inactive.ExternalUserID, resultIntent("CHK-INACTIVE"))

		for _, c := range allChannels {
			d := h.waitStatus(notify.DeliveryID(nid, c), domain.DeliverySuppressed)
			if d.ReasonCode != delivery.ReasonRetracted {
				t.Errorf("%s reason %q", c, d.ReasonCode)
			}
			d = h.waitStatus(notify.DeliveryID(nid2, c), domain.DeliverySuppressed)
			if d.ReasonCode != delivery.ReasonDoctorInactive {
				t.Errorf("%s reason %q", c, d.ReasonCode)
			}
		}
		time.Sleep(settle)
		if n := len(h.smtp.Messages()); n != 0 {
			t.Errorf("SMTP got %d messages", n)
		}
		if _, reqs := h.twilio.Snapshot(); len(reqs) != 0 {
			t.Errorf("twilio got %d requests", len(reqs))
		}
		if n := len(h.fcm.requests()); n != 0 {
			t.Errorf("FCM got %d requests", n)
		}
		if n := len(h.hooks.Requests("/hooks/retracted")) + len(h.hooks.Requests("/hooks/inactive")); n != 0 {
			t.Errorf("webhook receiver got %d requests", n)
		}
		if n := len(h.inAppEventsOf(nid)) + len(h.inAppEventsOf(nid2)); n != 0 {
			t.Errorf("%d in-app broadcasts", n)
		}
		if n := h.scalar(`SELECT count(*) FROM delivery_attempts`); n != 0 {
			t.Errorf("%d attempts recorded", n)
		}
	})
}

// 8. Twilio's status callbacks: replayed and out of order, the final status
// is delivered whatever the order; a bad signature is refused and changes
// nothing; "undelivered" after "delivered" does not regress. RFD_PUBLIC_URL
// is written with a trailing slash here, as operators do.
func TestE2ESMSStatusCallbacks(t *testing.T) {
	trailingSlash := func(c *config.Config) { c.PublicURL += "/" }
	eachCombination(t, func(t *testing.T, h *harness) {
		ch := map[domain.Category][]domain.Channel{domain.CategoryResults: {domain.ChannelSMS}}
		doc := h.addDoctor("callbacks", prefs(ch))

		orders := [][]string{
			{"queued", "sent", "delivered"}, {"queued", "delivered", "sent"}, {"sent", "queued", "delivered"},
			{"sent", "delivered", "queued"}, {"delivered", "queued", "sent"}, {"delivered", "sent", "queued"},
		}
		var ids []string
		for i := range orders {
			nid := h.notify(doc.ExternalUserID, resultIntent(fmt.Sprintf("CHK-CB-%d", i)))
			ids = append(ids, notify.DeliveryID(nid, domain.ChannelSMS))
		}
		extra := notify.DeliveryID(h.notify(doc.ExternalUserID, resultIntent("CHK-CB-X")), domain.ChannelSMS)
		failing := notify.DeliveryID(h.notify(doc.ExternalUserID, resultIntent("CHK-CB-U")), domain.ChannelSMS)

		// callback is what Twilio posts for one of its messages: to the
		// StatusCallback it was given, signed over that URL and the form.
		callback := func(did, status string) (string, url.Values) {
			reqs := h.twilio.RequestsFor(did)
			if len(reqs) != 1 {
				t.Fatalf("delivery %s: %d twilio requests", did, len(reqs))
			}
			form := url.Values{
				"AccountSid": {twilioSID}, "ApiVersion": {"2010-04-01"}, "From": {twilioFrom}, "To": {doc.Phone},
				"MessageSid": {reqs[0].SID}, "SmsSid": {reqs[0].SID}, "MessageStatus": {status}, "SmsStatus": {status},
			}
			if status == "undelivered" {
				form.Set("ErrorCode", "30003")
			}
			cbURL := reqs[0].Form.Get("StatusCallback")
			if want := h.callbackURL + delivery.SMSCallbackPath + "?d=" + did; cbURL != want {
				t.Errorf("StatusCallback %q, want %q", cbURL, want)
			}
			return cbURL, form
		}
		post := func(did, status string) int {
			cbURL, form := callback(did, status)
			return h.postCallback(cbURL, form, twilioSignature(twilioToken, cbURL, form))
		}

		rng := rand.New(rand.NewPCG(8, 8))
		for i, did := range ids {
			h.waitStatus(did, domain.DeliverySent)
			// First arrivals in this order, then two more replays of each, shuffled.
			seq := append([]string(nil), orders[i]...)
			replays := append(append([]string(nil), orders[i]...), orders[i]...)
			rng.Shuffle(len(replays), func(a, b int) { replays[a], replays[b] = replays[b], replays[a] })
			seq = append(seq, replays...)
			for _, st := range seq {
				if code := post(did, st); code != http.StatusNoContent {
					t.Errorf("callback %s for %s: HTTP %d", st, did, code)
				}
			}
			if d := h.delivery(did); d.Status != domain.DeliveryDelivered {
				t.Errorf("order %v (%v): final status %s, want delivered", orders[i], seq, d.Status)
			}
		}

		// The same nine callbacks all at once.
		concurrent := notify.DeliveryID(h.notify(doc.ExternalUserID, resultIntent("CHK-CB-C")), domain.ChannelSMS)
		h.waitStatus(concurrent, domain.DeliverySent)
		var wg sync.WaitGroup
		codes := make(chan int, 9)
		for range 3 {
			for _, st := range []string{"queued", "sent", "delivered"} {
				cbURL, form := callback(concurrent, st)
				sig := twilioSignature(twilioToken, cbURL, form)
				wg.Go(func() { codes <- h.postCallback(cbURL, form, sig) })
			}
		}
		wg.Wait()
		close(codes)
		for code := range codes {
			if code != http.StatusNoContent {
				t.Errorf("concurrent callback: HTTP %d", code)
			}
		}
		if d := h.delivery(concurrent); d.Status != domain.DeliveryDelivered {
			t.Errorf("after concurrent callbacks: %s, want delivered", d.Status)
		}

		// A forged callback: 403 and no change.
		h.waitStatus(extra, domain.DeliverySent)
		cbURL, form := callback(extra, "delivered")
		if code := h.postCallback(cbURL, form, twilioSignature("not-the-token", cbURL, form)); code != http.StatusForbidden {
			t.Errorf("forged callback: HTTP %d, want 403", code)
		}
		// Signed over another delivery's URL: also refused.
		otherURL, _ := callback(ids[0], "delivered")
		if code := h.postCallback(cbURL, form, twilioSignature(twilioToken, otherURL, form)); code != http.StatusForbidden {
			t.Errorf("callback signed for another URL: HTTP %d, want 403", code)
		}
		if d := h.delivery(extra); d.Status != domain.DeliverySent {
			t.Errorf("after forged callbacks: %s, want sent", d.Status)
		}

		// undelivered after delivered does not regress.
		if code := post(extra, "delivered"); code != http.StatusNoContent {
			t.Errorf("delivered callback: HTTP %d", code)
		}
		if code := post(extra, "undelivered"); code != http.StatusNoContent {
			t.Errorf("undelivered callback: HTTP %d", code)
		}
		if d := h.delivery(extra); d.Status != domain.DeliveryDelivered || d.StatusReason != "" {
			t.Errorf("after undelivered: %s (%q), want delivered", d.Status, d.StatusReason)
		}
		// While only sent, undelivered is the carrier's real verdict; a
		// late delivered cannot undo it.
		h.waitStatus(failing, domain.DeliverySent)
		for _, st := range []string{"sent", "undelivered", "sent", "delivered"} {
			if code := post(failing, st); code != http.StatusNoContent {
				t.Errorf("callback %s: HTTP %d", st, code)
			}
		}
		if d := h.delivery(failing); d.Status != domain.DeliveryUndelivered || d.ReasonCode != delivery.ReasonCarrierUndelivered ||
			!strings.Contains(d.StatusReason, "30003") {
			t.Errorf("after undelivered: %s %s (%q), want undelivered carrier_undelivered (30003)", d.Status, d.ReasonCode, d.StatusReason)
		}
		if creates, _ := h.twilio.Snapshot(); creates != len(ids)+3 {
			t.Errorf("%d creates, want %d", creates, len(ids)+3)
		}
	}, trailingSlash)
}

// 9. A command redelivered after it was processed calls no provider again.
func TestE2ERedeliveredCommand(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		doc := h.addDoctor("redeliver", prefs(map[domain.Category][]domain.Channel{domain.CategoryResults: allChannels}))
		h.addDevice(doc, "device-redeliver")
		h.addEndpoint(doc, "/hooks/redeliver")

		nid := h.notify(doc.ExternalUserID, resultIntent("CHK-RE"))
		h.waitStatus(notify.DeliveryID(nid, domain.ChannelInApp), domain.DeliveryDelivered)
		h.waitStatus(notify.DeliveryID(nid, domain.ChannelEmail), domain.DeliverySent)
		h.waitStatus(notify.DeliveryID(nid, domain.ChannelSMS), domain.DeliverySent)
		h.waitStatus(notify.DeliveryID(nid, domain.ChannelPush), domain.DeliverySent)
		h.waitStatus(notify.DeliveryID(nid, domain.ChannelWebhook), domain.DeliveryDelivered)

		// Publish every command of the notification again, with the same
		// message ids and payloads, as a redelivering broker would.
		var nt store.Notification
		ctx := context.Background()
		if err := h.env.DB.NewSelect().Model(&nt).Where("id = ?", nid).Scan(ctx); err != nil {
			t.Fatal(err)
		}
		dls := h.deliveriesOf(nid)
		for range 2 {
			err := h.env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				for _, c := range allChannels {
					dl := dls[c]
					if err := delivery.PublishCommand(ctx, tx, h.env.Outbox, h.cfg.TopicSendNotification, nt, doc.ID, &dl, 1, h.clock.Now()); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		// A later notification of the same doctor (same partition) marks
		// when the redelivered commands have been consumed.
		marker := h.notify(doc.ExternalUserID, resultIntent("CHK-RE-MARK"))
		for _, c := range allChannels {
			want := domain.DeliverySent
			if c == domain.ChannelInApp || c == domain.ChannelWebhook {
				want = domain.DeliveryDelivered
			}
			h.waitStatus(notify.DeliveryID(marker, c), want)
		}
		time.Sleep(settle)

		if n := len(h.smtp.Messages()); n != 2 {
			t.Errorf("SMTP got %d messages, want 2", n)
		}
		if creates, reqs := h.twilio.Snapshot(); creates != 2 || len(reqs) != 2 {
			t.Errorf("twilio: %d creates, %d requests; want 2 and 2", creates, len(reqs))
		}
		if n := len(h.fcm.requests()); n != 2 {
			t.Errorf("FCM got %d requests, want 2", n)
		}
		if n := len(h.hooks.Requests("/hooks/redeliver")); n != 2 {
			t.Errorf("webhook receiver got %d requests, want 2", n)
		}
		if n := len(h.inAppEventsOf(nid)); n != 1 {
			t.Errorf("%d in-app broadcasts of the first notification, want 1", n)
		}
		for _, c := range allChannels {
			if got := h.outcomes(notify.DeliveryID(nid, c)); !slices.Equal(got, []string{"1:success"}) {
				t.Errorf("%s attempts %v, want one success", c, got)
			}
		}
	})
}

// 9b. A crash after the provider call and before the commit leaves the
// delivery "sending" with no attempt and no inbox row; the broker then
// redelivers the command. The send is repeated with the same idempotency
// key and Message-ID: Twilio bills the SMS once.
func TestE2ERedeliveredAfterCrash(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		ch := map[domain.Category][]domain.Channel{domain.CategoryResults: {domain.ChannelEmail, domain.ChannelSMS}}
		doc := h.addDoctor("crash", prefs(ch))
		nid := h.notify(doc.ExternalUserID, resultIntent("CHK-CRASH"))
		smsID, emailID := notify.DeliveryID(nid, domain.ChannelSMS), notify.DeliveryID(nid, domain.ChannelEmail)
		first := h.waitStatus(smsID, domain.DeliverySent)
		h.waitStatus(emailID, domain.DeliverySent)

		// Rewind to what the crash would have left.
		ctx := context.Background()
		err := h.env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			for _, q := range []string{
				`DELETE FROM delivery_attempts WHERE delivery_id IN (?, ?)`,
				`DELETE FROM inbox WHERE consumer = 'send-notification' AND message_id IN (?, ?)`,
				`UPDATE deliveries SET status = 'sending', provider = '', provider_message_id = '' WHERE id IN (?, ?)`,
			} {
				if _, err := tx.NewRaw(q, smsID, emailID).Exec(ctx); err != nil {
					return err
				}
			}
			var nt store.Notification
			if err := tx.NewSelect().Model(&nt).Where("id = ?", nid).Scan(ctx); err != nil {
				return err
			}
			for _, did := range []string{smsID, emailID} {
				var dl store.Delivery
				if err := tx.NewSelect().Model(&dl).Where("id = ?", did).Scan(ctx); err != nil {
					return err
				}
				if err := delivery.PublishCommand(ctx, tx, h.env.Outbox, h.cfg.TopicSendNotification, nt, doc.ID, &dl, 1, h.clock.Now()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		again := h.waitStatus(smsID, domain.DeliverySent)
		h.waitStatus(emailID, domain.DeliverySent)
		time.Sleep(settle)

		creates, _ := h.twilio.Snapshot()
		reqs := h.twilio.RequestsFor(smsID)
		if creates != 1 || len(reqs) != 2 || reqs[0].SID != reqs[1].SID {
			t.Errorf("twilio: %d billable creates, requests %+v; want 1 create, 2 requests with one sid", creates, reqs)
		}
		if again.ProviderMessageID != first.ProviderMessageID {
			t.Errorf("sid after the crash %q, before %q", again.ProviderMessageID, first.ProviderMessageID)
		}
		msgs := h.smtp.Messages()
		if len(msgs) != 2 {
			t.Fatalf("SMTP got %d messages, want 2 (SMTP has no idempotency)", len(msgs))
		}
		id0, id1 := parseMail(t, msgs[0].Data).Header.Get("Message-ID"), parseMail(t, msgs[1].Data).Header.Get("Message-ID")
		if id0 != id1 || id0 != "<"+email.MessageIDFor(emailID)+">" {
			t.Errorf("Message-IDs %q and %q, want both <%s>", id0, id1, email.MessageIDFor(emailID))
		}
		for _, did := range []string{smsID, emailID} {
			if got := h.outcomes(did); !slices.Equal(got, []string{"1:success"}) {
				t.Errorf("%s attempts %v", did, got)
			}
		}
	})
}

// 10. Quiet hours: a normal notification made at 23:30 in the doctor's time
// zone waits for 07:00 (nothing reaches a provider before), then goes out;
// a critical one made at the same moment goes out at once.
func TestE2EQuietHoursDeferral(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		p := prefs(map[domain.Category][]domain.Channel{
			domain.CategoryResults:         {domain.ChannelEmail, domain.ChannelSMS},
			domain.CategoryCriticalResults: {domain.ChannelInApp, domain.ChannelEmail},
		})
		p.QuietHours = domain.QuietHours{Start: "22:00", End: "07:00"}
		doc := h.addDoctor("quiet", p)
		// Wednesday 25 November 2026, 23:30 in Bangkok.
		h.clock.Set(time.Date(2026, 11, 25, 16, 30, 0, 0, time.UTC))
		wakeUp := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC) // 07:00 in Bangkok

		nid := h.notify(doc.ExternalUserID, resultIntent("CHK-QUIET"))
		crit := h.notify(doc.ExternalUserID, criticalIntent("CHK-QUIET-CRIT"))
		emailID, smsID := notify.DeliveryID(nid, domain.ChannelEmail), notify.DeliveryID(nid, domain.ChannelSMS)

		// The critical one is not held by quiet hours.
		h.waitStatus(notify.DeliveryID(crit, domain.ChannelEmail), domain.DeliverySent)
		h.waitStatus(notify.DeliveryID(crit, domain.ChannelInApp), domain.DeliveryDelivered)

		// The normal one's commands were consumed and parked until 07:00.
		for _, did := range []string{emailID, smsID} {
			testenv.Eventually(t, waitLong, "deferral of "+did, func() (bool, string) {
				d := h.delivery(did)
				return d.NextAttemptAt != nil, fmt.Sprintf("%s, due %v", d.Status, d.NextAttemptAt)
			})
			d := h.delivery(did)
			if !d.NextAttemptAt.Equal(wakeUp) || !d.SendAt.Equal(wakeUp) || d.Status != domain.DeliveryQueued || d.Attempt != 0 {
				t.Errorf("deferred delivery %+v, want queued until %s", d, wakeUp)
			}
		}
		// Half an hour later (still quiet), nothing has gone out.
		h.clock.Set(time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC))
		time.Sleep(settle)
		for _, did := range []string{emailID, smsID} {
			if d := h.delivery(did); d.Status != domain.DeliveryQueued || len(h.attempts(did)) != 0 {
				t.Errorf("%s is %s with attempts %v during quiet hours", did, d.Status, h.outcomes(did))
			}
		}
		if n := len(h.smtp.Messages()); n != 1 {
			t.Errorf("SMTP got %d messages during quiet hours, want only the critical one", n)
		}
		if _, reqs := h.twilio.Snapshot(); len(reqs) != 0 {
			t.Errorf("twilio got %d requests during quiet hours", len(reqs))
		}

		// 07:00: the scheduler publishes them and they go out.
		h.clock.Set(wakeUp.Add(time.Second))
		h.waitStatus(emailID, domain.DeliverySent)
		h.waitStatus(smsID, domain.DeliverySent)
		time.Sleep(settle)
		for _, did := range []string{emailID, smsID} {
			if got := h.outcomes(did); !slices.Equal(got, []string{"1:success"}) {
				t.Errorf("%s attempts %v, want one success", did, got)
			}
		}
		if n := len(h.smtp.Messages()); n != 2 {
			t.Errorf("SMTP got %d messages, want 2", n)
		}
		if creates, reqs := h.twilio.Snapshot(); creates != 1 || len(reqs) != 1 {
			t.Errorf("twilio: %d creates, %d requests", creates, len(reqs))
		}
	})
}

// The per-doctor SMS cap: an SMS over it waits for the next slot without
// using up an attempt; a critical one is not held by it.
func TestE2ESMSPerDoctorCap(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		doc := h.addDoctor("capped", prefs(map[domain.Category][]domain.Channel{domain.CategoryResults: {domain.ChannelSMS}}))
		first := notify.DeliveryID(h.notify(doc.ExternalUserID, resultIntent("CHK-CAP-1")), domain.ChannelSMS)
		h.waitStatus(first, domain.DeliverySent)
		second := notify.DeliveryID(h.notify(doc.ExternalUserID, resultIntent("CHK-CAP-2")), domain.ChannelSMS)
		testenv.Eventually(t, 30*time.Second, "second SMS parked behind the cap", func() (bool, string) {
			d := h.delivery(second)
			return d.NextAttemptAt != nil && d.Status == domain.DeliveryQueued, fmt.Sprintf("%+v", d)
		})
		time.Sleep(settle)
		d := h.delivery(second)
		if d.Attempt != 0 || len(h.attempts(second)) != 0 {
			t.Fatalf("capped SMS used an attempt: %+v", d)
		}
		if wait := d.NextAttemptAt.Sub(h.clock.Now()); wait < 30*time.Minute {
			t.Fatalf("capped SMS due in %s, want the next hourly slot", wait)
		}
		if reqs := h.twilio.RequestsFor(second); len(reqs) != 0 {
			t.Fatalf("capped SMS reached the provider %d times", len(reqs))
		}
	}, func(c *config.Config) { c.SMSPerDoctorPerHour = 1 })
}

// A carrier reporting a critical notification's SMS undelivered (after the
// provider accepted it) moves the notification to the next channel of the
// doctor's fallback order.
func TestE2ECriticalSMSUndeliveredCallbackFallsBack(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		doc := h.addDoctor("carrier-fail", prefs(map[domain.Category][]domain.Channel{
			domain.CategoryCriticalResults: {domain.ChannelInApp, domain.ChannelSMS},
		}, domain.ChannelSMS, domain.ChannelEmail))
		nid := h.notify(doc.ExternalUserID, criticalIntent("CHK-CARRIER"))
		sid := notify.DeliveryID(nid, domain.ChannelSMS)
		h.waitStatus(sid, domain.DeliverySent)

		reqs := h.twilio.RequestsFor(sid)
		if len(reqs) != 1 {
			t.Fatalf("%d twilio requests", len(reqs))
		}
		cbURL := reqs[0].Form.Get("StatusCallback")
		form := url.Values{"AccountSid": {twilioSID}, "MessageSid": {reqs[0].SID}, "MessageStatus": {"undelivered"}, "ErrorCode": {"30003"}}
		for range 2 { // a replay must not queue a second fallback
			if code := h.postCallback(cbURL, form, twilioSignature(twilioToken, cbURL, form)); code != http.StatusNoContent {
				t.Fatalf("callback: HTTP %d", code)
			}
		}
		if d := h.delivery(sid); d.Status != domain.DeliveryUndelivered {
			t.Fatalf("sms delivery %s, want undelivered", d.Status)
		}
		eid := notify.DeliveryID(nid, domain.ChannelEmail)
		d := h.waitStatus(eid, domain.DeliverySent)
		if !strings.Contains(d.StatusReason, "") || h.scalar(`SELECT count(*) FROM deliveries WHERE notification_id = ?`, nid) != 3 {
			t.Fatalf("deliveries of the notification = %d, want in_app, sms and the email fallback", h.scalar(`SELECT count(*) FROM deliveries WHERE notification_id = ?`, nid))
		}
	})
}

// The record of a provider call fails once (a trigger on PostgreSQL raises
// on the first attempt row, as a deadlock or a dropped connection would):
// the dispatcher stores the outcome on its next try and the e-mail, which
// has no idempotency key, is sent once, not once per handler retry.
func TestE2ERecordFailureDoesNotResend(t *testing.T) {
	for _, name := range []string{testenv.PostgresSQL, testenv.PostgresKafka} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, name)
			ctx := context.Background()
			for _, q := range []string{
				`CREATE SEQUENCE record_fail`,
				`CREATE FUNCTION fail_first_record() RETURNS trigger AS $$
BEGIN
	IF nextval('record_fail') = 1 THEN RAISE EXCEPTION 'injected: the first record of an attempt fails'; END IF;
	RETURN NEW;
END $$ LANGUAGE plpgsql`,
				`CREATE TRIGGER fail_first BEFORE INSERT ON delivery_attempts FOR EACH ROW WHEN (NEW.provider = 'smtp') EXECUTE FUNCTION fail_first_record()`,
			} {
				if _, err := h.env.DB.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			doc := h.addDoctor("rec-fail", prefs(map[domain.Category][]domain.Channel{domain.CategoryResults: {domain.ChannelEmail}}))
			nid := h.notify(doc.ExternalUserID, resultIntent("CHK-RECFAIL"))
			did := notify.DeliveryID(nid, domain.ChannelEmail)
			h.waitStatus(did, domain.DeliverySent)
			time.Sleep(settle)
			n := 0
			for _, m := range h.smtp.Messages() {
				if m.MessageID() == email.MessageIDFor(did) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("e-mail sent %d times, want 1", n)
			}
			if got := h.outcomes(did); !slices.Equal(got, []string{"1:success"}) {
				t.Errorf("attempts %v, want one success", got)
			}
		})
	}
}

// 16. Commands in hand at once share the dispatcher's claim and record
// transactions (RFD_DELIVERIES_BATCH). Sharing changes nothing a doctor or
// a provider sees: every delivery is sent once, with one attempt recorded,
// and counted once.
func TestE2EBatchedDeliveriesEachOnce(t *testing.T) {
	eachCombination(t, func(t *testing.T, h *harness) {
		const doctors = 30
		channels := []domain.Channel{domain.ChannelInApp, domain.ChannelEmail, domain.ChannelWebhook}
		exts := make([]string, doctors)
		for i := range exts {
			doc := h.addDoctor(fmt.Sprintf("batch-%02d", i), prefs(map[domain.Category][]domain.Channel{domain.CategoryResults: channels}))
			h.addEndpoint(doc, fmt.Sprintf("/hooks/batch-%02d", i))
			exts[i] = doc.ExternalUserID
		}
		// One transaction makes every notification: the commands reach the
		// consumer together, as a burst of results does.
		var created []string
		err := h.env.DB.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
			out, err := h.notifier.Notify(ctx, tx, resultIntent("CHK-BATCH"), exts)
			created = out.Created
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(created) != doctors {
			t.Fatalf("%d notifications, want %d", len(created), doctors)
		}
		for _, nid := range created {
			h.waitStatus(notify.DeliveryID(nid, domain.ChannelInApp), domain.DeliveryDelivered)
			h.waitStatus(notify.DeliveryID(nid, domain.ChannelEmail), domain.DeliverySent)
			h.waitStatus(notify.DeliveryID(nid, domain.ChannelWebhook), domain.DeliveryDelivered)
		}
		// The broadcasts reach the portal through the outbox relay, after
		// the commit: wait for each, then for any copy.
		testenv.Eventually(t, waitLong, "an in-app broadcast of every notification", func() (bool, string) {
			for _, nid := range created {
				if len(h.inAppEventsOf(nid)) == 0 {
					return false, "none yet of " + nid
				}
			}
			return true, ""
		})
		time.Sleep(settle)

		ids := map[string]int{}
		for _, m := range h.smtp.Messages() {
			ids[m.MessageID()]++
		}
		for _, nid := range created {
			did := notify.DeliveryID(nid, domain.ChannelEmail)
			if ids[email.MessageIDFor(did)] != 1 {
				t.Errorf("e-mail of %s sent %d times, want 1", did, ids[email.MessageIDFor(did)])
			}
			if n := len(h.inAppEventsOf(nid)); n != 1 {
				t.Errorf("%d in-app broadcasts of %s, want 1", n, nid)
			}
			for _, c := range channels {
				if got := h.outcomes(notify.DeliveryID(nid, c)); !slices.Equal(got, []string{"1:success"}) {
					t.Errorf("%s of %s: attempts %v, want one success", c, nid, got)
				}
			}
		}
		for i := range doctors {
			if n := len(h.hooks.Requests(fmt.Sprintf("/hooks/batch-%02d", i))); n != 1 {
				t.Errorf("webhook batch-%02d got %d requests, want 1", i, n)
			}
		}

		// Counted once per delivery, after its transaction committed.
		counted := map[string]float64{}
		largest := 0.0
		families, err := h.env.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				switch f.GetName() {
				case "rfd_deliveries_total":
					counted[labels["channel"]+"/"+labels["status"]] += m.GetCounter().GetValue()
				case "rfd_delivery_batch_size":
					// The smallest bucket every observation fits in bounds the largest batch.
					for _, b := range m.GetHistogram().GetBucket() {
						if b.GetCumulativeCount() == m.GetHistogram().GetSampleCount() {
							largest = max(largest, b.GetUpperBound())
							break
						}
					}
				}
			}
		}
		for key, want := range map[string]float64{"in_app/delivered": doctors, "email/sent": doctors, "webhook/delivered": doctors} {
			if counted[key] != want {
				t.Errorf("rfd_deliveries_total{%s} = %v, want %v", key, counted[key], want)
			}
		}
		t.Logf("largest dispatcher batch: at most %v commands", largest)
		if h.env.Name == testenv.PostgresKafka && largest < 2 {
			t.Errorf("on Kafka, %d commands over %d partitions never shared a transaction", 3*doctors, testenv.KafkaPartitions)
		}
	})
}
