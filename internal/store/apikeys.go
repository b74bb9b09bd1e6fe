package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// APIKeyExecutor holds the statements on api_keys.
type APIKeyExecutor interface {
	APIKeyInsert(ctx context.Context, key *APIKey) error
	APIKeyRevoke(ctx context.Context, params *APIKeyRevokeParams) (bool, error)
	APIKeyList(ctx context.Context) ([]APIKey, error)
	APIKeyGetByHash(ctx context.Context, hash string) (*APIKey, error)
	APIKeySetLastUsed(ctx context.Context, params *APIKeySetLastUsedParams) error
}

// APIKey is a row of api_keys: an integrator's or operator's key, stored as
// the hash of its secret.
type APIKey struct {
	bun.BaseModel `bun:"table:api_keys"`

	ID         string     `bun:"id,pk"`
	Name       string     `bun:"name"`
	Prefix     string     `bun:"prefix"`
	Hash       string     `bun:"hash"`
	Scopes     string     `bun:"scopes"` // space-separated
	CreatedAt  time.Time  `bun:"created_at"`
	ExpiresAt  *time.Time `bun:"expires_at"`
	RevokedAt  *time.Time `bun:"revoked_at"`
	LastUsedAt *time.Time `bun:"last_used_at"`
}

// APIKeyRevokeParams revokes the live key ID at At.
type APIKeyRevokeParams struct {
	ID string
	At time.Time
}

// APIKeySetLastUsedParams records that key ID was used at At.
type APIKeySetLastUsedParams struct {
	ID string
	At time.Time
}

func (q *Queries) APIKeyInsert(ctx context.Context, key *APIKey) error {
	if _, err := q.db.NewInsert().Model(key).Exec(ctx); err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	return nil
}

// APIKeyRevoke reports whether a live key was revoked.
func (q *Queries) APIKeyRevoke(ctx context.Context, params *APIKeyRevokeParams) (bool, error) {
	res, err := q.db.NewUpdate().Model((*APIKey)(nil)).Set("revoked_at = ?", params.At).
		Where("id = ?", params.ID).Where("revoked_at IS NULL").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("revoke api key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("revoke api key: %w", err)
	}
	return n == 1, nil
}

// APIKeyList lists every key, newest first.
func (q *Queries) APIKeyList(ctx context.Context) ([]APIKey, error) {
	var keys []APIKey
	if err := q.db.NewSelect().Model(&keys).Order("created_at DESC", "id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return keys, nil
}

// APIKeyGetByHash is the key whose secret hashes to hash, or ErrNotFound.
func (q *Queries) APIKeyGetByHash(ctx context.Context, hash string) (*APIKey, error) {
	var k APIKey
	if err := one(q.db.NewSelect().Model(&k).Where("hash = ?", hash).Scan(ctx), "get api key"); err != nil {
		return nil, err
	}
	return &k, nil
}

func (q *Queries) APIKeySetLastUsed(ctx context.Context, params *APIKeySetLastUsedParams) error {
	if _, err := q.db.NewUpdate().Model((*APIKey)(nil)).Set("last_used_at = ?", params.At).
		Where("id = ?", params.ID).Exec(ctx); err != nil {
		return fmt.Errorf("set api key last used: %w", err)
	}
	return nil
}
