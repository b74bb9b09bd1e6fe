package roles

import (
	"context"
	"time"

	"github.com/google/wire"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/migrations"
)

// APIKeysSet provides the apikey command's manager.
var APIKeysSet = wire.NewSet(NewLogger, OpenExistingDB, NewMigrator, NewAPIKeyManager)

// APIKeyManager is `rfd apikey`: the integrators' and operators' API keys
// of the configured database.
type APIKeyManager struct {
	*auth.APIKeys
}

// NewAPIKeyManager returns the API-key manager of db. The schema must be
// current: a key written to a database no server migrated would be a key
// no server knows, so pending migrations are an error, never applied here.
func NewAPIKeyManager(ctx context.Context, cfg config.Config, db *bun.DB, m *migrations.Migrator) (*APIKeyManager, error) {
	if _, err := currentSchema(ctx, m, false, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	return &APIKeyManager{APIKeys: auth.NewAPIKeys(store.NewQueries(db), time.Now)}, nil
}
