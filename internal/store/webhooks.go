package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// WebhookEndpointExecutor holds the statements on webhook_endpoints that
// integrators manage.
type WebhookEndpointExecutor interface {
	WebhookEndpointInsert(ctx context.Context, row *WebhookEndpoint) error
	WebhookEndpointGet(ctx context.Context, id string) (*WebhookEndpoint, error)
	WebhookEndpointListForAPIKey(ctx context.Context, params *WebhookEndpointListForAPIKeyParams) ([]WebhookEndpoint, error)
	WebhookEndpointDelete(ctx context.Context, params *WebhookEndpointDeleteParams) (bool, error)
	WebhookEndpointRotateSecret(ctx context.Context, params *WebhookEndpointRotateSecretParams) (bool, error)
}

// WebhookEndpoint is a row of webhook_endpoints: an endpoint receiving the
// notifications of a doctor or of a clinic's doctors, registered by an API
// key.
type WebhookEndpoint struct {
	bun.BaseModel `bun:"table:webhook_endpoints"`

	ID             string     `bun:"id,pk"`
	DoctorID       *string    `bun:"doctor_id"`
	Clinic         *string    `bun:"clinic"`
	URL            string     `bun:"url"`
	Secret         string     `bun:"secret"`
	PreviousSecret string     `bun:"previous_secret"`
	DisabledAt     *time.Time `bun:"disabled_at"`
	DisabledReason string     `bun:"disabled_reason"`
	CreatedAt      time.Time  `bun:"created_at"`
	UpdatedAt      time.Time  `bun:"updated_at"`
	APIKeyID       *string    `bun:"api_key_id"`
}

// WebhookEndpointListForAPIKeyParams asks for the first Limit endpoints of
// APIKeyID, by id, after the id After ("" for the first).
type WebhookEndpointListForAPIKeyParams struct {
	APIKeyID string
	After    string
	Limit    int
}

// WebhookEndpointDeleteParams removes endpoint ID of APIKeyID.
type WebhookEndpointDeleteParams struct {
	ID       string
	APIKeyID string
}

// WebhookEndpointRotateSecretParams makes Secret the signing secret of
// APIKeyID's endpoint ID at Now, the current one becoming the previous.
type WebhookEndpointRotateSecretParams struct {
	ID       string
	APIKeyID string
	Secret   string
	Now      time.Time
}

func (q *Queries) WebhookEndpointInsert(ctx context.Context, row *WebhookEndpoint) error {
	if _, err := q.db.NewInsert().Model(row).Exec(ctx); err != nil {
		return fmt.Errorf("insert webhook endpoint: %w", err)
	}
	return nil
}

// WebhookEndpointGet is the endpoint, or ErrNotFound.
func (q *Queries) WebhookEndpointGet(ctx context.Context, id string) (*WebhookEndpoint, error) {
	var row WebhookEndpoint
	if err := one(q.db.NewSelect().Model(&row).Where("id = ?", id).Scan(ctx), "load webhook endpoint"); err != nil {
		return nil, err
	}
	return &row, nil
}

// WebhookEndpointListForAPIKey lists a page of the key's endpoints.
func (q *Queries) WebhookEndpointListForAPIKey(ctx context.Context, params *WebhookEndpointListForAPIKeyParams) ([]WebhookEndpoint, error) {
	var rows []WebhookEndpoint
	sel := q.db.NewSelect().Model(&rows).Where("api_key_id = ?", params.APIKeyID)
	if params.After != "" {
		sel = sel.Where("id > ?", params.After)
	}
	if err := sel.Order("id").Limit(int64(params.Limit)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	return rows, nil
}

// WebhookEndpointDelete reports whether the key had the endpoint.
func (q *Queries) WebhookEndpointDelete(ctx context.Context, params *WebhookEndpointDeleteParams) (bool, error) {
	res, err := q.db.NewDelete().Model((*WebhookEndpoint)(nil)).Where("id = ?", params.ID).Where("api_key_id = ?", params.APIKeyID).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("delete webhook endpoint: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete webhook endpoint: %w", err)
	}
	return n > 0, nil
}

// WebhookEndpointRotateSecret reports whether the key had the endpoint,
// whose secret is now rotated.
func (q *Queries) WebhookEndpointRotateSecret(ctx context.Context, params *WebhookEndpointRotateSecretParams) (bool, error) {
	res, err := q.db.NewUpdate().Model((*WebhookEndpoint)(nil)).
		Set("previous_secret = secret").Set("secret = ?", params.Secret).Set("updated_at = ?", params.Now).
		Where("id = ?", params.ID).Where("api_key_id = ?", params.APIKeyID).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("rotate webhook secret: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("rotate webhook secret: %w", err)
	}
	return n > 0, nil
}
