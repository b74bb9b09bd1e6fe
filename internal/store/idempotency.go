package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// IdempotencyKeyExecutor holds the statements on idempotency_keys: the
// Idempotency-Keys of integrators' requests, with their first responses.
type IdempotencyKeyExecutor interface {
	IdempotencyKeyInsert(ctx context.Context, row *IdempotencyKey) (bool, error)
	IdempotencyKeyGet(ctx context.Context, params *IdempotencyKeyGetParams) (*IdempotencyKey, error)
	IdempotencyKeySetResponse(ctx context.Context, params *IdempotencyKeySetResponseParams) error
	IdempotencyKeyDeleteExpired(ctx context.Context, params *IdempotencyKeyDeleteExpiredParams) error
	IdempotencyKeyDeleteAllExpired(ctx context.Context, at time.Time) error
}

// IdempotencyKey is a row of idempotency_keys: one remembered key of an
// API key, hashed, with the hash of the request it came with and, once
// that request finished, its response.
type IdempotencyKey struct {
	bun.BaseModel `bun:"table:idempotency_keys"`

	APIKeyID       string    `bun:"api_key_id,pk"`
	KeyHash        string    `bun:"key_hash,pk"`
	Operation      string    `bun:"operation"`
	RequestHash    string    `bun:"request_hash"`
	ResponseStatus int       `bun:"response_status"`
	ResponseBody   string    `bun:"response_body"`
	CreatedAt      time.Time `bun:"created_at"`
	ExpiresAt      time.Time `bun:"expires_at"`
}

// IdempotencyKeyGetParams names the key KeyHash of APIKeyID.
type IdempotencyKeyGetParams struct {
	APIKeyID string
	KeyHash  string
}

// IdempotencyKeySetResponseParams records the response (Status, Body) of
// the request that claimed the key KeyHash of APIKeyID.
type IdempotencyKeySetResponseParams struct {
	APIKeyID string
	KeyHash  string
	Status   int
	Body     string
}

// IdempotencyKeyDeleteExpiredParams drops the key KeyHash of APIKeyID if
// it expired at or before At.
type IdempotencyKeyDeleteExpiredParams struct {
	APIKeyID string
	KeyHash  string
	At       time.Time
}

// IdempotencyKeyInsert reports whether the key was new and is now
// recorded; a key recorded already is left as it is. Inside a
// transaction, the new row is held until it ends: a concurrent insert of
// the same key waits for it.
func (q *Queries) IdempotencyKeyInsert(ctx context.Context, row *IdempotencyKey) (bool, error) {
	res, err := q.db.NewInsert().Model(row).On("CONFLICT (api_key_id, key_hash) DO NOTHING").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("record idempotency key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record idempotency key: %w", err)
	}
	return n == 1, nil
}

// IdempotencyKeyGet is the recorded key, or ErrNotFound.
func (q *Queries) IdempotencyKeyGet(ctx context.Context, params *IdempotencyKeyGetParams) (*IdempotencyKey, error) {
	var row IdempotencyKey
	if err := one(q.db.NewSelect().Model(&row).Where("api_key_id = ?", params.APIKeyID).Where("key_hash = ?", params.KeyHash).Scan(ctx), "load idempotency key"); err != nil {
		return nil, err
	}
	return &row, nil
}

func (q *Queries) IdempotencyKeySetResponse(ctx context.Context, params *IdempotencyKeySetResponseParams) error {
	if _, err := q.db.NewUpdate().Model((*IdempotencyKey)(nil)).Set("response_status = ?", params.Status).Set("response_body = ?", params.Body).
		Where("api_key_id = ?", params.APIKeyID).Where("key_hash = ?", params.KeyHash).Exec(ctx); err != nil {
		return fmt.Errorf("store idempotent response: %w", err)
	}
	return nil
}

// IdempotencyKeyDeleteExpired drops one key if it has expired, so that it
// can be used afresh.
func (q *Queries) IdempotencyKeyDeleteExpired(ctx context.Context, params *IdempotencyKeyDeleteExpiredParams) error {
	if _, err := q.db.NewDelete().Model((*IdempotencyKey)(nil)).Where("api_key_id = ?", params.APIKeyID).
		Where("key_hash = ?", params.KeyHash).Where("expires_at <= ?", params.At).Exec(ctx); err != nil {
		return fmt.Errorf("drop expired idempotency key: %w", err)
	}
	return nil
}

// IdempotencyKeyDeleteAllExpired drops every key expired at or before at.
func (q *Queries) IdempotencyKeyDeleteAllExpired(ctx context.Context, at time.Time) error {
	if _, err := q.db.NewDelete().Model((*IdempotencyKey)(nil)).Where("expires_at <= ?", at).Exec(ctx); err != nil {
		return fmt.Errorf("sweep expired idempotency keys: %w", err)
	}
	return nil
}
