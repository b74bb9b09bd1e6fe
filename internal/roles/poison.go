package roles

import (
	"context"

	"github.com/google/wire"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/jobs/poison"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/migrations"
	"github.com/rfd-notify/rfd/outbox"
)

// PoisonSet provides the poison command's manager.
var PoisonSet = wire.NewSet(NewLogger, OpenExistingDB, NewMigrator, NewSQLPubSub, NewOutbox, NewPoison, NewPoisonManager)

// PoisonManager is `rfd poison`: the poisoned messages of the configured
// database. Replays go through the outbox of the configured transport.
type PoisonManager struct {
	*poison.Service
}

// NewPoisonManager returns the manager once the schema is current (pending
// migrations are an error: an empty list from a database no server uses
// would mislead), and the topic tables replays write to exist.
func NewPoisonManager(ctx context.Context, cfg config.Config, db *bun.DB, m *migrations.Migrator, ob *outbox.Publisher, svc *poison.Service) (*PoisonManager, error) {
	if _, err := currentSchema(ctx, m, false, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	if err := ob.EnsureTopics(ctx, OutboxTopics(cfg)...); err != nil {
		return nil, err
	}
	return &PoisonManager{Service: svc}, nil
}
