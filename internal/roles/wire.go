package roles

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/google/wire"

	"github.com/rfd-notify/rfd/migrations"
)

// RuntimeSet provides a production role's Runtime, on a database that
// exists (`rfd migrate up` creates it).
var RuntimeSet = wire.NewSet(runtimeParts, OpenExistingDB)

// ServeRuntimeSet provides serve's Runtime: serve may create its database.
var ServeRuntimeSet = wire.NewSet(runtimeParts, OpenServeDB)

var runtimeParts = wire.NewSet(
	NewLogger,
	NewRegistry,
	Registerer,
	NewSQLPubSub,
	NewTransport,
	NewOutbox,
	NewRouter,
	NewChecks,
	NewMigrator,
	NewInbox,
	NewNotifier,
	NewSweeper,
	NewSenders,
	NewDispatcher,
	NewScheduler,
	NewHub,
	NewPoison,
	NewFanOut,
	NewReportMailer,
	NewHandlers,
	NewRuntime,
)

// MigrateSet provides the migrate command.
var MigrateSet = wire.NewSet(NewLogger, OpenMigrateDB, NewMigrator, NewMigrate)

// Migrate is `rfd migrate up|down|status`.
type Migrate struct {
	m      *migrations.Migrator
	logger *slog.Logger
}

// NewMigrate returns the migrate command.
func NewMigrate(m *migrations.Migrator, logger *slog.Logger) *Migrate {
	return &Migrate{m: m, logger: logger}
}

// Up applies pending migrations.
func (m *Migrate) Up(ctx context.Context, w io.Writer) error {
	applied, err := m.m.Up(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		_, _ = fmt.Fprintln(w, "database is up to date")
	}
	for _, name := range applied {
		_, _ = fmt.Fprintln(w, "applied", name)
	}
	return nil
}

// Down rolls back the last group of migrations.
func (m *Migrate) Down(ctx context.Context, w io.Writer) error {
	rolled, err := m.m.Down(ctx)
	if err != nil {
		return err
	}
	if len(rolled) == 0 {
		_, _ = fmt.Fprintln(w, "nothing to roll back")
	}
	for _, name := range rolled {
		_, _ = fmt.Fprintln(w, "rolled back", name)
	}
	return nil
}

// Status prints every migration and whether it is applied.
func (m *Migrate) Status(ctx context.Context, w io.Writer) error {
	st, err := m.m.Status(ctx)
	if err != nil {
		return err
	}
	for _, s := range st {
		state := "pending"
		if s.Applied {
			state = fmt.Sprintf("applied (group %d)", s.GroupID)
		}
		_, _ = fmt.Fprintf(w, "%-40s %s\n", s.Name, state)
	}
	return nil
}
