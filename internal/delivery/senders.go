package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/delivery/channels"
	"github.com/rfd-notify/rfd/internal/delivery/channels/email"
	"github.com/rfd-notify/rfd/internal/delivery/channels/push"
	"github.com/rfd-notify/rfd/internal/delivery/channels/sms"
	"github.com/rfd-notify/rfd/internal/delivery/channels/webhook"
	"github.com/rfd-notify/rfd/internal/platform/ratelimit"
	"github.com/rfd-notify/rfd/internal/store"
)

// Senders are the channels' provider clients. A nil client means the
// channel is not configured: its deliveries fail permanently saying so.
type Senders struct {
	Email   *email.Client
	SMS     *sms.Client
	Push    *push.Client
	Webhook *webhook.Client
	// Rate limits each provider (one bucket per channel) and SMS per doctor.
	Limits       map[domain.Channel]*ratelimit.Limiter
	SMSPerDoctor *ratelimit.Limiter
	PortalURL    string
}

// Close ends what the clients keep open between sends: the e-mail
// channel's idle SMTP sessions. Call it once nothing sends any more.
func (s Senders) Close() {
	if s.Email != nil {
		_ = s.Email.Close() // always nil
	}
}

// Targets are where a doctor's push and webhook deliveries go.
type Targets struct {
	DeviceTokens []string
	Endpoints    []EndpointTarget
}

// EndpointTarget is one active webhook endpoint.
type EndpointTarget struct {
	ID      string
	URL     string
	Secrets []string
}

// sendResult is what an attempt produced.
type sendResult struct {
	out channels.Outcome
	err error
	// Tokens and endpoints the providers said are gone for good.
	deadTokens    []string
	deadEndpoints []string
}

var errNotConfigured = errors.New("channel not configured")

func (s Senders) send(ctx context.Context, j job) sendResult {
	ch := j.delivery.Channel
	if ch == domain.ChannelInApp {
		return sendResult{out: channels.Outcome{Provider: "in_app", ProviderMessageID: j.notification.ID}}
	}
	if l := s.Limits[ch]; l != nil {
		if err := l.Wait(ctx, string(ch)); err != nil {
			return sendResult{err: channels.Transient("rate_limited", time.Second, err)}
		}
	}
	switch ch {
	case domain.ChannelEmail:
		return s.email(ctx, j)
	case domain.ChannelSMS:
		return s.sms(ctx, j)
	case domain.ChannelPush:
		return s.push(ctx, j)
	case domain.ChannelWebhook:
		return s.webhook(ctx, j)
	}
	return sendResult{err: channels.Permanent("unknown_channel", fmt.Errorf("unknown channel %q", ch))}
}

func (s Senders) render(j job) (templates.Rendered, error) {
	var d templates.Data
	raw, err := json.Marshal(j.notification.Data)
	if err == nil {
		err = json.Unmarshal(raw, &d)
	}
	if err != nil {
		return templates.Rendered{}, channels.Permanent("template_data", err)
	}
	d.DoctorName = j.doctor.Name
	d.NotificationID = j.notification.ID
	d.PortalURL = s.PortalURL + "/notifications/" + j.notification.ID
	r, err := templates.Render(j.notification.Type, string(j.delivery.Channel), j.doctor.Locale, d)
	if err != nil {
		return r, channels.Permanent("template", err)
	}
	return r, nil
}

func (s Senders) email(ctx context.Context, j job) sendResult {
	if s.Email == nil {
		return sendResult{err: channels.Permanent("not_configured", errNotConfigured)}
	}
	if strings.TrimSpace(j.doctor.Email) == "" {
		return sendResult{err: channels.Permanent("no_address", errors.New("doctor has no email address"))}
	}
	r, err := s.render(j)
	if err != nil {
		return sendResult{err: err}
	}
	out, err := s.Email.Send(ctx, email.Message{To: j.doctor.Email, Subject: r.Subject, Text: r.Text, HTML: r.HTML, DeliveryID: j.delivery.ID})
	return sendResult{out: out, err: err}
}

func (s Senders) sms(ctx context.Context, j job) sendResult {
	if s.SMS == nil {
		return sendResult{err: channels.Permanent("not_configured", errNotConfigured)}
	}
	if strings.TrimSpace(j.doctor.Phone) == "" {
		return sendResult{err: channels.Permanent("no_address", errors.New("doctor has no phone number"))}
	}
	r, err := s.render(j)
	if err != nil {
		return sendResult{err: err}
	}
	out, err := s.SMS.Send(ctx, sms.Message{To: j.doctor.Phone, Body: r.Text, DeliveryID: j.delivery.ID})
	return sendResult{out: out, err: err}
}

func (s Senders) push(ctx context.Context, j job) sendResult {
	if s.Push == nil {
		return sendResult{err: channels.Permanent("not_configured", errNotConfigured)}
	}
	if len(j.targets.DeviceTokens) == 0 {
		return sendResult{err: channels.Permanent("no_device", errors.New("doctor has no active push device"))}
	}
	r, err := s.render(j)
	if err != nil {
		return sendResult{err: err}
	}
	// One delivery reaches every device of the doctor: it succeeds if any
	// device took it; tokens FCM has forgotten are disabled at once.
	var res sendResult
	var transient error
	for _, tok := range j.targets.DeviceTokens {
		out, err := s.Push.Send(ctx, push.Message{Token: tok, Title: r.Title, Body: r.Body, DeliveryID: j.delivery.ID,
			Data: map[string]string{"notification_id": j.notification.ID}})
		switch {
		case err == nil:
			if res.out.ProviderMessageID == "" {
				res.out = out
			}
		case isDeadToken(err):
			res.deadTokens = append(res.deadTokens, tok)
			if res.err == nil {
				res.err = err
			}
		default:
			transient = err
		}
	}
	switch {
	case res.out.ProviderMessageID != "":
		res.err = nil
	case transient != nil:
		res.err = transient
	}
	return res
}

func isDeadToken(err error) bool {
	f, ok := channels.AsFailure(err)
	return ok && f.Permanent && (f.Code == push.ErrUnregistered || f.Code == push.ErrInvalidArgument || f.Code == push.ErrSenderIDMismatch)
}

// WebhookPayload is the body integrators receive: opaque ids and the
// notification's classification, never patient data; the detail is behind
// the authenticated API.
type WebhookPayload struct {
	Type             string    `json:"type"`
	NotificationID   string    `json:"notification_id"`
	DeliveryID       string    `json:"delivery_id"`
	DoctorID         string    `json:"doctor_id"`
	NotificationType string    `json:"notification_type"`
	Category         string    `json:"category"`
	Priority         string    `json:"priority"`
	CreatedAt        time.Time `json:"created_at"`
	URL              string    `json:"url"`
}

func (s Senders) webhook(ctx context.Context, j job) sendResult {
	if s.Webhook == nil {
		return sendResult{err: channels.Permanent("not_configured", errNotConfigured)}
	}
	if len(j.targets.Endpoints) == 0 {
		return sendResult{err: channels.Permanent("no_endpoint", errors.New("no active webhook endpoint"))}
	}
	body, err := json.Marshal(WebhookPayload{
		Type: "notification.created", NotificationID: j.notification.ID, DeliveryID: j.delivery.ID, DoctorID: j.doctor.ID,
		NotificationType: j.notification.Type, Category: string(j.notification.Category), Priority: string(j.notification.Priority),
		CreatedAt: j.notification.CreatedAt.UTC(), URL: s.PortalURL + "/notifications/" + j.notification.ID,
	})
	if err != nil {
		return sendResult{err: channels.Permanent("encode", err)}
	}
	var res sendResult
	var transient error
	for _, ep := range j.targets.Endpoints {
		// webhook-id is the delivery id: stable across retries, so the
		// receiver can drop a duplicate.
		out, err := s.Webhook.Send(ctx, webhook.Endpoint{URL: ep.URL, Secrets: ep.Secrets}, j.delivery.ID, body)
		switch {
		case err == nil:
			if res.out.ProviderMessageID == "" {
				res.out = out
			}
		case channels.IsPermanent(err):
			if f, _ := channels.AsFailure(err); f != nil && f.Code == "gone" {
				res.deadEndpoints = append(res.deadEndpoints, ep.ID)
			}
			if res.err == nil {
				res.err = err
			}
		default:
			transient = err
		}
	}
	switch {
	case res.out.ProviderMessageID != "":
		res.err = nil
	case transient != nil:
		res.err = transient
	}
	return res
}

// LoadTargets reads what a delivery on channel ch goes to: the doctor's
// active push devices (push), or the active webhook endpoints of the
// doctor and their clinic (webhook); nothing for the other channels.
func LoadTargets(ctx context.Context, q store.TargetExecutor, doctorID string, ch domain.Channel) (Targets, error) {
	var t Targets
	var err error
	switch ch {
	case domain.ChannelPush:
		t.DeviceTokens, err = q.TargetListDeviceTokens(ctx, doctorID)
		return t, err
	case domain.ChannelWebhook:
	default:
		return t, nil
	}
	eps, err := q.TargetListWebhookEndpoints(ctx, doctorID)
	if err != nil {
		return t, err
	}
	for _, e := range eps {
		secrets := []string{e.Secret}
		if e.PreviousSecret != "" {
			secrets = append(secrets, e.PreviousSecret)
		}
		t.Endpoints = append(t.Endpoints, EndpointTarget{ID: e.ID, URL: e.URL, Secrets: secrets})
	}
	return t, nil
}
