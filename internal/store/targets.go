package store

import (
	"context"
	"fmt"
	"time"
)

// TargetExecutor holds the statements a delivery makes on where it goes:
// the doctor's push devices and the webhook endpoints it posts to.
type TargetExecutor interface {
	TargetListDeviceTokens(ctx context.Context, doctorID string) ([]string, error)
	TargetListWebhookEndpoints(ctx context.Context, doctorID string) ([]TargetWebhookEndpoint, error)
	TargetDisableDevice(ctx context.Context, params *TargetDisableDeviceParams) error
	TargetDisableWebhookEndpoint(ctx context.Context, params *TargetDisableWebhookEndpointParams) error
}

// TargetWebhookEndpoint is an active webhook endpoint a delivery posts to.
type TargetWebhookEndpoint struct {
	ID             string `bun:"id"`
	URL            string `bun:"url"`
	Secret         string `bun:"secret"`
	PreviousSecret string `bun:"previous_secret"`
}

// TargetDisableDeviceParams disables push token Token at At, for Reason.
type TargetDisableDeviceParams struct {
	Token  string
	Reason string
	At     time.Time
}

// TargetDisableWebhookEndpointParams disables endpoint ID at At, for Reason.
type TargetDisableWebhookEndpointParams struct {
	ID     string
	Reason string
	At     time.Time
}

// TargetListDeviceTokens are the doctor's active push tokens, oldest first.
func (q *Queries) TargetListDeviceTokens(ctx context.Context, doctorID string) ([]string, error) {
	var tokens []string
	if err := q.db.NewRaw(`SELECT token FROM devices WHERE doctor_id = ? AND disabled_at IS NULL ORDER BY created_at, token`, doctorID).Scan(ctx, &tokens); err != nil {
		return nil, fmt.Errorf("load devices: %w", err)
	}
	return tokens, nil
}

// TargetListWebhookEndpoints are the active endpoints of the doctor and of
// their clinic, oldest first.
func (q *Queries) TargetListWebhookEndpoints(ctx context.Context, doctorID string) ([]TargetWebhookEndpoint, error) {
	var eps []TargetWebhookEndpoint
	if err := q.db.NewRaw(`SELECT id, url, secret, previous_secret FROM webhook_endpoints
WHERE disabled_at IS NULL AND (doctor_id = ? OR clinic = (SELECT clinic FROM doctors WHERE id = ? AND clinic <> ''))
ORDER BY created_at, id`, doctorID, doctorID).Scan(ctx, &eps); err != nil {
		return nil, fmt.Errorf("load webhook endpoints: %w", err)
	}
	return eps, nil
}

func (q *Queries) TargetDisableDevice(ctx context.Context, params *TargetDisableDeviceParams) error {
	if _, err := q.db.NewRaw(`UPDATE devices SET disabled_at = ?, disabled_reason = ?, updated_at = ? WHERE token = ? AND disabled_at IS NULL`,
		params.At, params.Reason, params.At, params.Token).Exec(ctx); err != nil {
		return fmt.Errorf("disable device: %w", err)
	}
	return nil
}

func (q *Queries) TargetDisableWebhookEndpoint(ctx context.Context, params *TargetDisableWebhookEndpointParams) error {
	if _, err := q.db.NewRaw(`UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ?, updated_at = ? WHERE id = ? AND disabled_at IS NULL`,
		params.At, params.Reason, params.At, params.ID).Exec(ctx); err != nil {
		return fmt.Errorf("disable webhook endpoint: %w", err)
	}
	return nil
}
