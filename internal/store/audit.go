package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// AuditExecutor holds the statements on audit_log, the append-only record
// of API reads of patient data and of changes.
type AuditExecutor interface {
	AuditInsert(ctx context.Context, entry *AuditEntry) error
	AuditInsertMany(ctx context.Context, entries []*AuditEntry) error
}

// AuditEntry is a row of audit_log: who (a doctor or an API key), what
// (action and object), when, from where, and how it ended.
type AuditEntry struct {
	bun.BaseModel `bun:"table:audit_log"`

	ID         int64          `bun:"id,pk,autoincrement"`
	OccurredAt time.Time      `bun:"occurred_at"`
	ActorType  string         `bun:"actor_type"`
	ActorID    string         `bun:"actor_id"`
	Action     string         `bun:"action"`
	ObjectType string         `bun:"object_type"`
	ObjectID   string         `bun:"object_id"`
	Outcome    string         `bun:"outcome"`
	SourceIP   string         `bun:"source_ip"`
	UserAgent  string         `bun:"user_agent"`
	Detail     map[string]any `bun:"detail,type:json,nullzero"`
}

// AuditInsert appends one entry. Its ID is left as it is: nothing reads it
// back (RETURNING NULL), which spares PostgreSQL the round of a result.
func (q *Queries) AuditInsert(ctx context.Context, entry *AuditEntry) error {
	if _, err := q.db.NewInsert().Model(entry).Returning("NULL").Exec(ctx); err != nil {
		return fmt.Errorf("insert audit entry: %w", err)
	}
	return nil
}

// AuditInsertMany appends entries in one statement.
func (q *Queries) AuditInsertMany(ctx context.Context, entries []*AuditEntry) error {
	if _, err := q.db.NewInsert().Model(&entries).Returning("NULL").Exec(ctx); err != nil {
		return fmt.Errorf("insert audit entries: %w", err)
	}
	return nil
}
