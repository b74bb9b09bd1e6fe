package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/delivery/channels/webhook"
	"github.com/rfd-notify/rfd/internal/store"
)

// Webhook is a webhook endpoint, without its secrets.
type Webhook struct {
	ID             string     `json:"id" example:"9a7b6c5d-4e3f-5a2b-8c1d-0e9f8a7b6c5d"`
	DoctorID       *string    `json:"doctor_id,omitempty" doc:"The doctor whose notifications it receives." example:"0b8e4b6e-6f57-5c5a-9d0e-2a0c1f6f3b7a"`
	Clinic         *string    `json:"clinic,omitempty" doc:"The clinic whose doctors' notifications it receives." example:"Sukhumvit Heart Clinic"`
	URL            string     `json:"url" format:"uri" example:"https://crm.clinic.example/hooks/rfd"`
	Rotating       bool       `json:"rotating" doc:"true while a previous secret is still valid after a rotation: webhooks carry a signature with each secret." example:"false"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty" doc:"When the service stopped calling it (the endpoint refused permanently)." example:"2026-11-26T03:00:00Z"`
	DisabledReason string     `json:"disabled_reason,omitempty" example:"endpoint answered 410 Gone"`
	CreatedAt      time.Time  `json:"created_at" example:"2026-11-25T03:00:00Z"`
	UpdatedAt      time.Time  `json:"updated_at" example:"2026-11-25T03:00:00Z"`
}

// WebhookWithSecret is a webhook endpoint with its signing secret, shown
// only when it is created or rotated.
type WebhookWithSecret struct {
	Webhook
	Secret string `json:"secret" doc:"The Standard Webhooks signing secret (whsec_…). Shown this once: store it now." example:"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"`
}

// CreateWebhookRequest registers an endpoint for a doctor or a clinic.
type CreateWebhookRequest struct {
	DoctorID         string `json:"doctor_id,omitempty" maxLength:"100" doc:"The doctor (this service's id). Give one of doctor_id, doctor_external_id and clinic." example:"0b8e4b6e-6f57-5c5a-9d0e-2a0c1f6f3b7a"`
	DoctorExternalID string `json:"doctor_external_id,omitempty" maxLength:"200" doc:"The doctor (user-management id)." example:"usr-10042"`
	Clinic           string `json:"clinic,omitempty" maxLength:"200" doc:"The clinic (as named in the doctors' profiles): every doctor of it." example:"Sukhumvit Heart Clinic"`
	URL              string `json:"url" minLength:"1" maxLength:"2000" doc:"An absolute https URL of a public host, without user information." example:"https://crm.clinic.example/hooks/rfd"`
}

type createWebhookInput struct {
	Body CreateWebhookRequest
}

type webhookSecretOutput struct {
	Body WebhookWithSecret
}

type listWebhooksInput struct {
	Limit  int    `query:"limit" minimum:"1" maximum:"100" default:"50" doc:"Page size, at most 100."`
	Cursor string `query:"cursor" maxLength:"100" doc:"The next_cursor of the previous page."`
}

// WebhookPage is a page of the API key's webhook endpoints.
type WebhookPage struct {
	Items      []Webhook `json:"items"`
	NextCursor string    `json:"next_cursor,omitempty" doc:"Pass as cursor for the next page; absent on the last page." example:"9a7b6c5d-4e3f-5a2b-8c1d-0e9f8a7b6c5d"`
}

type webhookPageOutput struct {
	Body WebhookPage
}

type webhookIDInput struct {
	ID string `path:"id" maxLength:"100" doc:"The endpoint's id." example:"9a7b6c5d-4e3f-5a2b-8c1d-0e9f8a7b6c5d"`
}

func webhookView(r *store.WebhookEndpoint) Webhook {
	return Webhook{ID: r.ID, DoctorID: r.DoctorID, Clinic: r.Clinic, URL: r.URL, Rotating: r.PreviousSecret != "",
		DisabledAt: utcPtr(r.DisabledAt), DisabledReason: r.DisabledReason, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
}

func registerWebhooks(integrator *huma.Group, in *integrations) {
	huma.Register(integrator, huma.Operation{
		OperationID: "createWebhook",
		Method:      http.MethodPost,
		Path:        "/v1/webhooks",
		Summary:     "Register a webhook endpoint",
		Description: "Registers an https endpoint receiving the notifications of a doctor or of every doctor of a clinic, signed per Standard Webhooks. " +
			"The URL must be https, without user information (user@host), naming its host by DNS name or canonical IP address; the " +
			"address, or every address the name resolves to, must be public: loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), " +
			"link-local (169.254/16, fe80::/10), CGNAT, multicast, reserved and IPv4-mapped or NAT64 forms of those are 422, as is a " +
			"name that does not exist. Delivery applies the same rules to every address it connects to, so a name re-pointed later " +
			"is refused then. " +
			"The signing secret is in this response only: it cannot be read again (rotate it to get a new one). Needs scope notifications:write.",
		Tags:          []string{tagWebhooks},
		Metadata:      scopes(auth.ScopeNotificationsWrite),
		Errors:        []int{http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity},
		DefaultStatus: http.StatusCreated,
	}, in.createWebhook)
	huma.Register(integrator, huma.Operation{
		OperationID: "listWebhooks",
		Method:      http.MethodGet,
		Path:        "/v1/webhooks",
		Summary:     "List webhook endpoints",
		Description: "The endpoints this API key registered, without their secrets. Needs scope notifications:write.",
		Tags:        []string{tagWebhooks},
		Metadata:    scopes(auth.ScopeNotificationsWrite),
	}, in.listWebhooks)
	huma.Register(integrator, huma.Operation{
		OperationID:   "deleteWebhook",
		Method:        http.MethodDelete,
		Path:          "/v1/webhooks/{id}",
		Summary:       "Delete a webhook endpoint",
		Description:   "Stops calling the endpoint and forgets it. Another API key's endpoint is 404. Needs scope notifications:write.",
		Tags:          []string{tagWebhooks},
		Metadata:      scopes(auth.ScopeNotificationsWrite),
		Errors:        []int{http.StatusNotFound},
		DefaultStatus: http.StatusNoContent,
	}, in.deleteWebhook)
	huma.Register(integrator, huma.Operation{
		OperationID: "rotateWebhookSecret",
		Method:      http.MethodPost,
		Path:        "/v1/webhooks/{id}/rotate",
		Summary:     "Rotate a webhook endpoint's secret",
		Description: "Makes a new signing secret, shown in this response only. The current secret stays valid as the previous one: every webhook carries " +
			"a signature with each, so the receiver can switch without losing any. The next rotation drops it. Needs scope notifications:write.",
		Tags:     []string{tagWebhooks},
		Metadata: scopes(auth.ScopeNotificationsWrite),
		Errors:   []int{http.StatusNotFound},
	}, in.rotateWebhook)
}

func (in *integrations) createWebhook(ctx context.Context, req *createWebhookInput) (*webhookSecretOutput, error) {
	key, err := apiKeyOf(ctx)
	if err != nil {
		return nil, err
	}
	b := req.Body
	given := 0
	for _, s := range []string{b.DoctorID, b.DoctorExternalID, b.Clinic} {
		if s != "" {
			given++
		}
	}
	if given != 1 {
		return nil, huma.Error422UnprocessableEntity("give exactly one of doctor_id, doctor_external_id and clinic",
			&huma.ErrorDetail{Location: "body.doctor_id", Message: "exactly one of doctor_id, doctor_external_id and clinic is required"})
	}
	u, resolved, err := webhook.CheckDestination(ctx, b.URL, in.cfg.WebhookAllowLoopback, in.resolver)
	if err != nil {
		return nil, webhookURLProblem(err)
	}
	if !resolved {
		in.logger.WarnContext(ctx, "api: webhook host did not resolve at registration; delivery checks its addresses",
			"host", u.Hostname())
	}
	ctx, cancel := in.dbctx(ctx)
	defer cancel()
	now := in.now().UTC()
	keyID := key.ID
	row := store.WebhookEndpoint{ID: uuid.NewString(), URL: u.String(), Secret: webhook.GenerateSecret(), CreatedAt: now, UpdatedAt: now, APIKeyID: &keyID}
	if b.Clinic != "" {
		clinic := b.Clinic
		row.Clinic = &clinic
	} else {
		doc, found, err := doctorByIDOrExternal(ctx, in.db, b.DoctorID, b.DoctorExternalID)
		if err != nil {
			return nil, in.fail(ctx, "createWebhook", err)
		}
		if !found {
			return nil, huma.Error404NotFound("no such doctor")
		}
		row.DoctorID = &doc.ID
	}
	if err := store.NewQueries(in.db).WebhookEndpointInsert(ctx, &row); err != nil {
		return nil, in.fail(ctx, "createWebhook", err)
	}
	return &webhookSecretOutput{Body: WebhookWithSecret{Webhook: webhookView(&row), Secret: row.Secret}}, nil
}

// webhookURLProblem is the 422 of a URL the delivery policy refuses. It
// says why without naming the address a name resolved to: that is this
// service's view of its network, not the integrator's business.
func webhookURLProblem(err error) error {
	msg := "must be an absolute https URL with a host"
	var invalid *webhook.InvalidURLError
	var blocked *webhook.BlockedAddressError
	switch {
	case errors.As(err, &invalid):
		msg = invalid.Reason
	case errors.As(err, &blocked):
		msg = "the host is or resolves to a loopback, private, link-local or otherwise non-public address"
	case errors.Is(err, webhook.ErrNoSuchHost):
		msg = "the host name does not resolve"
	}
	return huma.Error422UnprocessableEntity("the webhook URL is not allowed: "+msg,
		&huma.ErrorDetail{Location: "body.url", Message: msg})
}

func (in *integrations) listWebhooks(ctx context.Context, req *listWebhooksInput) (*webhookPageOutput, error) {
	key, err := apiKeyOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := in.dbctx(ctx)
	defer cancel()
	rows, err := store.NewQueries(in.db).WebhookEndpointListForAPIKey(ctx, &store.WebhookEndpointListForAPIKeyParams{
		APIKeyID: key.ID, After: req.Cursor, Limit: req.Limit + 1})
	if err != nil {
		return nil, in.fail(ctx, "listWebhooks", err)
	}
	page := WebhookPage{Items: make([]Webhook, 0, min(len(rows), req.Limit))}
	for i, r := range rows {
		if i == req.Limit {
			page.NextCursor = rows[i-1].ID
			break
		}
		page.Items = append(page.Items, webhookView(&r))
	}
	return &webhookPageOutput{Body: page}, nil
}

func (in *integrations) deleteWebhook(ctx context.Context, req *webhookIDInput) (*struct{}, error) {
	key, err := apiKeyOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := in.dbctx(ctx)
	defer cancel()
	deleted, err := store.NewQueries(in.db).WebhookEndpointDelete(ctx, &store.WebhookEndpointDeleteParams{ID: req.ID, APIKeyID: key.ID})
	if err != nil {
		return nil, in.fail(ctx, "deleteWebhook", err)
	}
	if !deleted {
		return nil, huma.Error404NotFound("no such webhook endpoint")
	}
	return nil, nil
}

func (in *integrations) rotateWebhook(ctx context.Context, req *webhookIDInput) (*webhookSecretOutput, error) {
	key, err := apiKeyOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := in.dbctx(ctx)
	defer cancel()
	var row *store.WebhookEndpoint
	err = in.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		q := store.NewQueries(tx)
		rotated, err := q.WebhookEndpointRotateSecret(ctx, &store.WebhookEndpointRotateSecretParams{
			ID: req.ID, APIKeyID: key.ID, Secret: webhook.GenerateSecret(), Now: in.now().UTC()})
		if err != nil {
			return err
		}
		if !rotated {
			return huma.Error404NotFound("no such webhook endpoint")
		}
		row, err = q.WebhookEndpointGet(ctx, req.ID)
		return err
	})
	if err != nil {
		return nil, in.fail(ctx, "rotateWebhookSecret", err)
	}
	return &webhookSecretOutput{Body: WebhookWithSecret{Webhook: webhookView(row), Secret: row.Secret}}, nil
}
