package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/delivery"
	"github.com/rfd-notify/rfd/internal/store"
)

// Delivery is a notification's delivery on one channel, with every attempt.
type Delivery struct {
	ID             string            `json:"id" example:"3c9f2e1a-7b6d-5e4f-9a8b-1c2d3e4f5a6b"`
	NotificationID string            `json:"notification_id" example:"6f1c8a9e-2b1d-5c4e-8f7a-3d2e1b0c9a87"`
	Channel        domain.Channel    `json:"channel" enum:"in_app,email,sms,push,webhook" example:"sms"`
	Status         string            `json:"status" enum:"queued,sending,sent,delivered,read,acknowledged,failed,undelivered,suppressed" doc:"Statuses only move forward: queued → sending → sent → delivered (→ read → acknowledged in the portal), or failed, undelivered, suppressed." example:"delivered"`
	ReasonCode     string            `json:"reason_code,omitempty" enum:"doctor_inactive,notification_retracted,notification_superseded,notification_expired,opted_out,sms_cap,fallback,stuck_retried,not_configured,no_destination,invalid_destination,unsubscribed,provider_rejected,provider_unavailable,rate_limited,timeout,carrier_undelivered,internal_error,provider_error" doc:"Why it failed, was suppressed or waits: a stable code. A queued delivery with a failure code is waiting for its retry." example:"opted_out"`
	Reason         string            `json:"reason,omitempty" doc:"reason_code's message, the same for every delivery with that code; never the provider's own error text." example:"The doctor opted out of this channel for this category."`
	Attempt        int               `json:"attempt" doc:"The number of the latest attempt; 0 before the first." example:"1"`
	Provider       string            `json:"provider,omitempty" example:"twilio"`
	SendAt         time.Time         `json:"send_at" doc:"The earliest time it goes out (quiet hours defer it)." example:"2026-11-25T03:00:00Z"`
	NextAttemptAt  *time.Time        `json:"next_attempt_at,omitempty" doc:"When the next attempt is due, while a transient failure is retried." example:"2026-11-25T03:01:00Z"`
	CreatedAt      time.Time         `json:"created_at" example:"2026-11-25T03:00:00Z"`
	UpdatedAt      time.Time         `json:"updated_at" example:"2026-11-25T03:00:02Z"`
	Attempts       []DeliveryAttempt `json:"attempts" doc:"Every attempt, oldest first."`
}

// DeliveryAttempt is one call to the channel's provider.
type DeliveryAttempt struct {
	Attempt           int       `json:"attempt" example:"1"`
	Provider          string    `json:"provider" example:"twilio"`
	ProviderMessageID string    `json:"provider_message_id,omitempty" example:"SM0123456789abcdef0123456789abcdef"`
	Outcome           string    `json:"outcome" doc:"What the provider answered." example:"success"`
	ReasonCode        string    `json:"reason_code,omitempty" doc:"Why the attempt failed, one of the delivery's reason codes." example:"provider_unavailable"`
	Error             string    `json:"error,omitempty" doc:"reason_code's message; never the provider's own error text." example:"The provider was unavailable."`
	StartedAt         time.Time `json:"started_at" example:"2026-11-25T03:00:01Z"`
	FinishedAt        time.Time `json:"finished_at" example:"2026-11-25T03:00:02Z"`
}

// deliveryScopes are the scopes of which getDelivery needs one.
var deliveryScopes = []string{auth.ScopeNotificationsWrite, auth.ScopeDeliveriesRead}

type getDeliveryInput struct {
	ID string `path:"id" maxLength:"100" doc:"The delivery's id (from sendNotification's deliveries)." example:"3c9f2e1a-7b6d-5e4f-9a8b-1c2d3e4f5a6b"`
}

type deliveryOutput struct {
	Body Delivery
}

func registerDeliveries(integrator *huma.Group, in *integrations) {
	huma.Register(integrator, huma.Operation{
		OperationID: "getDelivery",
		Method:      http.MethodGet,
		Path:        "/v1/deliveries/{id}",
		Summary:     "Get a delivery's status",
		Description: "The status of a notification on one channel, why it failed, was suppressed or waits (a stable reason_code and its fixed message), " +
			"and every attempt. Carries no notification text and never the provider's own error text. " +
			"A key with scope notifications:write reads the deliveries of the notifications it sent (and their covering copies); " +
			"scope deliveries:read (operators) reads any delivery. Any other delivery is 404, whether it exists or not.",
		Tags: []string{tagDeliveries},
		// Either scope will do. The security middleware requires every
		// scope of a requirement, so the key is authenticated there and its
		// scopes checked here.
		Metadata:   scopes(),
		Extensions: map[string]any{"x-scopes-any-of": deliveryScopes},
		Errors:     []int{http.StatusNotFound},
	}, in.getDelivery)
}

func (in *integrations) getDelivery(ctx context.Context, req *getDeliveryInput) (*deliveryOutput, error) {
	key, err := apiKeyOf(ctx)
	if err != nil {
		return nil, err
	}
	all := key.HasScope(auth.ScopeDeliveriesRead)
	if !all && !key.HasScope(auth.ScopeNotificationsWrite) {
		return nil, huma.Error403Forbidden("the API key needs the scope \"notifications:write\" or \"deliveries:read\"")
	}
	ctx, cancel := in.dbctx(ctx)
	defer cancel()
	q := store.NewQueries(in.db)
	var d *store.Delivery
	if all {
		d, err = q.DeliveryGet(ctx, req.ID)
	} else {
		// A sender sees what it sent: notifications made by
		// sendNotification carry the key as their source.
		d, err = q.DeliveryGetForSource(ctx, &store.DeliveryGetForSourceParams{ID: req.ID, SourceEventID: sendSource(key.ID)})
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, huma.Error404NotFound("no such delivery")
	}
	if err != nil {
		return nil, in.fail(ctx, "getDelivery", err)
	}
	out := Delivery{
		ID: d.ID, NotificationID: d.NotificationID, Channel: d.Channel, Status: d.Status,
		ReasonCode: d.ReasonCode, Reason: delivery.ReasonMessage(d.ReasonCode), Attempt: d.Attempt,
		Provider: d.Provider, SendAt: d.SendAt.UTC(), NextAttemptAt: utcPtr(d.NextAttemptAt), CreatedAt: d.CreatedAt.UTC(),
		UpdatedAt: d.UpdatedAt.UTC(), Attempts: []DeliveryAttempt{},
	}
	// The stored error column is not read: messages come from the code.
	attempts, err := q.DeliveryAttemptList(ctx, d.ID)
	if err != nil {
		return nil, in.fail(ctx, "getDelivery", err)
	}
	for _, a := range attempts {
		out.Attempts = append(out.Attempts, DeliveryAttempt{
			Attempt: a.Attempt, Provider: a.Provider, ProviderMessageID: a.ProviderMessageID, Outcome: a.Outcome,
			ReasonCode: a.ReasonCode, Error: delivery.ReasonMessage(a.ReasonCode),
			StartedAt: a.StartedAt.UTC(), FinishedAt: a.FinishedAt.UTC(),
		})
	}
	return &deliveryOutput{Body: out}, nil
}
