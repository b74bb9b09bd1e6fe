package store

import (
	"database/sql"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Executor is the data layer: every statement the service runs, migrations
// aside, behind a named method. It has the shape of river's riverdriver
// Executor: one method per statement, named Aggregate + Verb, taking a
// Params struct where there is more than one argument. Each aggregate's
// methods are declared in its own file (apikeys.go, ...) as an interface
// that Executor embeds, next to the implementation and its row types.
//
// Queries is the one implementation; where PostgreSQL and SQLite need
// different SQL, the method branches on the dialect in that file. The
// shared suite in storetest runs every method on both.
type Executor interface {
	APIKeyExecutor
	CronRunExecutor
	RetentionExecutor
	DigestExecutor
	EscalationExecutor
	BroadcastExecutor
	ReportExecutor
	PoisonMessageExecutor
	AuditExecutor
	DeliveryExecutor
	TargetExecutor
	NotificationExecutor
	ParkingExecutor
	CheckupExecutor
	OrderExecutor
	DoctorExecutor
	PreferencesExecutor
	DelegationExecutor
	DeviceExecutor
	WebhookEndpointExecutor
	IdempotencyKeyExecutor
	LoginAuditExecutor
}

// ErrNotFound is returned by a Get method that finds no row.
var ErrNotFound = errors.New("store: not found")

// Queries runs the data layer's statements on a database or inside a
// transaction (bun.IDB is either), on PostgreSQL or SQLite.
type Queries struct {
	db bun.IDB
	pg bool
}

var _ Executor = (*Queries)(nil)

// NewQueries returns the data layer over db: a *bun.DB, or a bun.Tx for
// statements that must commit together with the caller's other work.
func NewQueries(db bun.IDB) *Queries {
	return &Queries{db: db, pg: db.Dialect().Name() == dialect.PG}
}

// InTx is q inside tx.
func (q *Queries) InTx(tx bun.Tx) *Queries { return &Queries{db: tx, pg: q.pg} }

// one is the error of a read of one row: ErrNotFound when there was none,
// else err wrapped with what.
func one(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
