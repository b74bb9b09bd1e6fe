package delivery

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/time/rate"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/delivery/channels/email"
	"github.com/rfd-notify/rfd/internal/delivery/channels/push"
	"github.com/rfd-notify/rfd/internal/delivery/channels/sms"
	"github.com/rfd-notify/rfd/internal/delivery/channels/webhook"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/ratelimit"
)

// SMSCallbackPath is where the SMS provider posts status callbacks.
const SMSCallbackPath = "/v1/callbacks/sms"

// SendersFromConfig builds the clients of every configured channel. A
// channel without its settings stays nil (not configured).
func SendersFromConfig(ctx context.Context, cfg config.Config) (Senders, error) {
	s := Senders{
		PortalURL: cfg.PortalURL,
		Limits: map[domain.Channel]*ratelimit.Limiter{
			domain.ChannelEmail:   ratelimit.New(rate.Limit(cfg.RateEmail), max(1, int(cfg.RateEmail))),
			domain.ChannelSMS:     ratelimit.New(rate.Limit(cfg.RateSMS), max(1, int(cfg.RateSMS))),
			domain.ChannelPush:    ratelimit.New(rate.Limit(cfg.RatePush), max(1, int(cfg.RatePush))),
			domain.ChannelWebhook: ratelimit.New(rate.Limit(cfg.RateWebhook), max(1, int(cfg.RateWebhook))),
		},
		SMSPerDoctor: ratelimit.PerHour(cfg.SMSPerDoctorPerHour),
	}
	httpClient := &http.Client{Timeout: 15 * time.Second}

	c, err := EmailFromConfig(cfg)
	if err != nil {
		return s, err
	}
	s.Email = c
	if cfg.TwilioAccountSID != "" {
		c, err := sms.New(sms.Config{
			BaseURL: cfg.TwilioBaseURL, AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken, From: cfg.TwilioFrom,
			// PublicBaseURL has no trailing slash, as NewSMSCallbacks trims
			// it: with one the callback URL would have "//" and fail its
			// signature check.
			StatusCallbackURL: cfg.PublicBaseURL() + SMSCallbackPath,
		}, httpClient)
		if err != nil {
			return s, fmt.Errorf("RFD_TWILIO_*: %w", err)
		}
		s.SMS = c
	}
	if cfg.FCMProjectID != "" {
		key, err := os.ReadFile(cfg.FCMCredentialsFile)
		if err != nil {
			return s, fmt.Errorf("RFD_FCM_CREDENTIALS_FILE: %w", err)
		}
		ts, err := push.ServiceAccountTokenSource(ctx, key, cfg.FCMTokenURL)
		if err != nil {
			return s, fmt.Errorf("RFD_FCM_CREDENTIALS_FILE: %w", err)
		}
		c, err := push.New(push.Config{BaseURL: cfg.FCMBaseURL, ProjectID: cfg.FCMProjectID, TokenSource: ts}, httpClient)
		if err != nil {
			return s, fmt.Errorf("RFD_FCM_*: %w", err)
		}
		s.Push = c
	}
	s.Webhook = webhook.New(webhook.Config{AllowLoopback: cfg.WebhookAllowLoopback, Timeout: webhook.DefaultTimeout}, &net.Dialer{Timeout: 10 * time.Second})
	return s, nil
}

// EmailFromConfig builds the email channel's client from RFD_SMTP_*, or
// returns nil when no SMTP server is configured. The caller closes it: it
// keeps SMTP sessions open between sends. The worker, which only
// e-mails the cron's reports, builds this one client and no other channel.
func EmailFromConfig(cfg config.Config) (*email.Client, error) {
	if cfg.SMTPHost == "" {
		return nil, nil
	}
	c, err := email.New(email.Config{
		Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword,
		TLS: cfg.SMTPTLS, From: cfg.SMTPFrom, Timeout: 15 * time.Second, MaxConnections: cfg.SMTPMaxConnections,
	}, &net.Dialer{Timeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("RFD_SMTP_*: %w", err)
	}
	return c, nil
}
