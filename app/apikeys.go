package app

import (
	"context"
	"time"

	"github.com/google/wire"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/auth"
	"github.com/rfd-notify/rfd/config"
	"github.com/rfd-notify/rfd/migrations"
)

// APIKeysSet provides the apikey command's manager.
var APIKeysSet = wire.NewSet(NewLogger, OpenDB, NewMigrator, NewAPIKeyManager)

// APIKeyManager is `rfd apikey`: the integrators' and operators' API keys
// of the configured database.
type APIKeyManager struct {
	*auth.APIKeys
}

// NewAPIKeyManager returns the API-key manager of db. The schema must be
// current: with RFD_AUTO_MIGRATE (the default, as for serve) pending
// migrations are applied, otherwise they are an error.
func NewAPIKeyManager(ctx context.Context, cfg config.Config, db *bun.DB, m *migrations.Migrator) (*APIKeyManager, error) {
	if _, err := currentSchema(ctx, m, cfg.AutoMigrate); err != nil {
		return nil, err
	}
	return &APIKeyManager{APIKeys: auth.NewAPIKeys(db, time.Now)}, nil
}
