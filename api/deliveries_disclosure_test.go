package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/delivery"
	"github.com/rfd-notify/rfd/internal/delivery/channels/sms"
	"github.com/rfd-notify/rfd/internal/platform/config"
)

// TestDeliveryDisclosure: a provider error naming the Twilio account's path
// (with its Account SID) and an internal address reaches the log only. The
// sender's key reads its delivery with a stable reason code and a fixed
// message, the doctor sees the same code in the notification; neither
// answer, nor the database, holds the provider's words. Another sender's
// key gets 404 for the same delivery, a key without a delivery scope 403,
// and an operator's deliveries:read key reads it.
func TestDeliveryDisclosure(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		const sid = "AC7f3e2d1c0b9a88776655443322110099"
		f.registerDoctor("doc-a")
		writer := f.apiKey("crm", auth.ScopeNotificationsWrite)
		otherWriter := f.apiKey("other crm", auth.ScopeNotificationsWrite)
		reader := f.apiKey("reader", auth.ScopeDoctorsRead)
		operator := f.apiKey("support", auth.ScopeDeliveriesRead)

		// The "provider": an address that refuses connections, so the
		// client's error is Go's own, with the request URL in it.
		gone := httptest.NewServer(http.NotFoundHandler())
		providerURL := gone.URL
		gone.Close()
		client, err := sms.New(sms.Config{BaseURL: providerURL, AccountSID: sid, AuthToken: "secret-token", From: "+6620000000"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var logs syncBuffer
		disp, err := delivery.NewDispatcher(f.env.DB, f.env.Inbox, f.env.Outbox, delivery.Senders{SMS: client}, delivery.Options{
			MaxAttempts: 1, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
			SendTopic: f.env.Config.TopicSendNotification, InAppTopic: f.env.Config.TopicInApp, ConsumerName: config.ConsumerSendNotification,
		}, time.Now, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}

		var sent api.SentNotification
		f.do(http.MethodPost, "/v1/notifications", writer, map[string]any{
			"doctor_external_id": "doc-a", "category": "critical_results", "type": "critical_result", "priority": "critical",
			"data": map[string]any{"patient_name": "Somchai Jaidee", "test_name": "Potassium", "result_value": "6.9 mmol/L"},
		}).ok(t, http.StatusCreated, &sent)
		var smsID string
		for _, d := range sent.Notifications[0].Deliveries {
			if d.Channel == domain.ChannelSMS {
				smsID = d.ID
			}
		}
		if smsID == "" {
			t.Fatalf("no SMS delivery in %+v", sent)
		}
		cmd := events.SendNotification{DeliveryID: smsID, NotificationID: sent.ID, DoctorID: sent.DoctorID, Channel: string(domain.ChannelSMS),
			Category: string(domain.CategoryCriticalResults), Priority: string(domain.PriorityCritical), Type: "critical_result",
			SendAt: f.now.Add(-time.Minute), Attempt: 1}
		payload, err := cmd.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := disp.Handle(message.NewMessage(smsID, payload)); err != nil {
			t.Fatal(err)
		}

		host := strings.TrimPrefix(providerURL, "http://")
		secrets := []string{sid, "/Accounts/", host, "connection refused", "dial tcp"}
		// Operators still find the provider's words in the log.
		if l := logs.String(); !strings.Contains(l, sid) || !strings.Contains(l, "connection refused") || !strings.Contains(l, "reason_code=provider_unavailable") {
			t.Fatalf("the log lacks the provider error: %s", l)
		}
		leaks := func(who string, body []byte) {
			t.Helper()
			for _, s := range secrets {
				if bytes.Contains(body, []byte(s)) {
					t.Errorf("%s sees %q: %s", who, s, body)
				}
			}
		}

		var d api.Delivery
		r := f.do(http.MethodGet, "/v1/deliveries/"+smsID, writer, nil)
		r.ok(t, http.StatusOK, &d)
		leaks("the sender", r.body)
		want := delivery.ReasonMessage(delivery.ReasonProviderUnavailable)
		if d.Status != domain.DeliveryUndelivered || d.ReasonCode != delivery.ReasonProviderUnavailable || d.Reason != want {
			t.Fatalf("delivery = %s %q %q, want undelivered provider_unavailable %q", d.Status, d.ReasonCode, d.Reason, want)
		}
		if len(d.Attempts) != 1 || d.Attempts[0].ReasonCode != delivery.ReasonProviderUnavailable || d.Attempts[0].Error != want {
			t.Fatalf("attempts = %+v", d.Attempts)
		}

		var n api.NotificationDetail
		r = f.do(http.MethodGet, "/v1/notifications/"+sent.ID, f.token("doc-a"), nil)
		r.ok(t, http.StatusOK, &n)
		leaks("the doctor", r.body)
		i := slices.IndexFunc(n.Deliveries, func(s api.ChannelDelivery) bool { return s.Channel == domain.ChannelSMS })
		if i < 0 || n.Deliveries[i].ReasonCode != delivery.ReasonProviderUnavailable || n.Deliveries[i].StatusReason != want {
			t.Fatalf("the doctor's deliveries = %+v", n.Deliveries)
		}

		r = f.do(http.MethodGet, "/v1/deliveries/"+smsID, operator, nil)
		r.ok(t, http.StatusOK, &d)
		leaks("the operator", r.body)
		if d.ID != smsID || d.ReasonCode != delivery.ReasonProviderUnavailable {
			t.Fatalf("operator's delivery = %+v", d)
		}
		// Outside the key's reach: the same answer as no such delivery.
		notFound := f.do(http.MethodGet, "/v1/deliveries/"+smsID, otherWriter, nil)
		notFound.problem(t, http.StatusNotFound)
		none := f.do(http.MethodGet, "/v1/deliveries/no-such-delivery", otherWriter, nil)
		none.problem(t, http.StatusNotFound)
		if string(notFound.body) != string(none.body) {
			t.Errorf("another key's delivery answers %s, no delivery %s: they must not differ", notFound.body, none.body)
		}
		f.do(http.MethodGet, "/v1/deliveries/"+smsID, reader, nil).problem(t, http.StatusForbidden)

		// Nor is the provider's text stored.
		for _, q := range []string{
			`SELECT count(*) FROM deliveries WHERE status_reason LIKE ? OR status_reason LIKE ?`,
			`SELECT count(*) FROM delivery_attempts WHERE error LIKE ? OR error LIKE ?`,
		} {
			if n := f.scalar(q, "%"+sid+"%", "%refused%"); n != 0 {
				t.Errorf("%s: %d rows hold the provider's error", q, n)
			}
		}
	})
}

// TestDeliveryReasonCodesDocumented: the spec's reason_code enum is
// delivery.ReasonCodes, and every code has its own message.
func TestDeliveryReasonCodesDocumented(t *testing.T) {
	field, _ := reflect.TypeFor[api.Delivery]().FieldByName("ReasonCode")
	if got := strings.Split(field.Tag.Get("enum"), ","); !slices.Equal(got, delivery.ReasonCodes) {
		t.Errorf("Delivery.reason_code enum = %v, want %v", got, delivery.ReasonCodes)
	}
	seen := map[string]bool{}
	for _, c := range delivery.ReasonCodes {
		m := delivery.ReasonMessage(c)
		if m == "" || seen[m] {
			t.Errorf("reason %s: message %q missing or shared", c, m)
		}
		seen[m] = true
	}
}

// syncBuffer is a log sink safe for the dispatcher's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
