package roles

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/google/wire"

	"github.com/rfd-notify/rfd/migrations"
)

// The long-running roles are assembled from the provider sets below, one
// per capability. Each role's injector (wire.go at the top level) names the
// sets of what it runs, and wire builds only what the role's type needs:
// `rfd api` builds no provider client, dispatcher, sweeper, scheduler,
// fan-out or mailer; `rfd serve` takes every set.

// BaseSet provides a role's Base on a database that exists (`rfd migrate
// up` creates it).
var BaseSet = wire.NewSet(baseParts, OpenExistingDB)

// ServeBaseSet provides serve's Base: serve may create its database.
var ServeBaseSet = wire.NewSet(baseParts, OpenServeDB)

var baseParts = wire.NewSet(
	NewLogger,
	NewRegistry,
	Registerer,
	NewSQLPubSub,
	NewTransport,
	NewOutbox,
	NewChecks,
	NewMigrator,
	NewBase,
)

// RouterSet gives a role that consumes messages its router.
var RouterSet = wire.NewSet(NewRouter, NewRouted)

// ServicesSet provides the services several roles share: the notifier, the
// inbox, the poison service and the scheduler of due deliveries. A role
// builds those it uses.
var ServicesSet = wire.NewSet(NewNotifier, NewInbox, NewPoison, NewScheduler)

// APISet provides the REST API and this replica's in-app hub. The api role
// adds NoPublicMetrics, serve ServeMetrics.
var APISet = wire.NewSet(NewHub, NewAPIServer)

// ConsumerSet provides a `rfd consume NAME` process's consumers; the
// provider clients only for send-notification.
var ConsumerSet = wire.NewSet(NewConsumerSendDispatch, NewConsumerHandlers)

// SendersSet provides every consumer with the provider clients of the
// configured channels: serve's, which runs them all.
var SendersSet = wire.NewSet(NewSenders, NewDispatcher, NewHandlers)

// WorkerSet provides the worker's jobs: the sweep of pending
// notifications, the broadcast fan-out and the report mailer (RFD_SMTP_*
// only).
var WorkerSet = wire.NewSet(NewSweeper, NewFanOut, NewReportMailer)

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
