package api

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/platform/groupcommit"
	"github.com/rfd-notify/rfd/internal/store"
)

// Audit outcomes.
const (
	outcomeSuccess  = "success"
	outcomeNotFound = "not_found"
)

// An audit row (store.AuditEntry) is one API read of patient data: who
// (the doctor or API key), what (action and object), when, from where,
// and how it ended. A doctor asking for another doctor's object is
// recorded as not_found.

// audit records an access. Patient data is never returned unaudited: when
// the row cannot be written the request fails.
func (h *service) audit(ctx context.Context, db bun.IDB, action, objectType, objectID, outcome string, detail map[string]any) error {
	c := callerOf(ctx)
	row := &store.AuditEntry{
		OccurredAt: h.now().UTC(),
		ActorType:  c.actorType,
		ActorID:    c.actorID,
		Action:     action,
		ObjectType: objectType,
		ObjectID:   truncate(objectID, 200),
		Outcome:    outcome,
		SourceIP:   c.ip,
		UserAgent:  c.userAgent,
		Detail:     detail,
	}
	if _, inTx := db.(bun.Tx); !inTx && h.auditLog != nil {
		// Outside a transaction the row joins its concurrent peers' commit.
		if err := h.auditLog.write(ctx, row); err != nil {
			return fmt.Errorf("audit %s: %w", action, err)
		}
		return nil
	}
	if err := store.NewQueries(db).AuditInsert(ctx, row); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// auditLog writes the audit rows that are not part of a caller's
// transaction with group commit: the rows of concurrent requests share one
// INSERT and one commit, so a burst of portal reads costs one round trip
// and one WAL flush, not one each. Every request still waits for its own
// row to be committed before it answers, so no read goes unaudited.
type auditLog struct {
	q       store.AuditExecutor
	timeout time.Duration
	group   *groupcommit.Group[*store.AuditEntry]
}

// auditBatchMax bounds one INSERT.
const auditBatchMax = 500

func newAuditLog(db *bun.DB, timeout time.Duration) *auditLog {
	l := &auditLog{q: store.NewQueries(db), timeout: timeout}
	l.group = groupcommit.New(l.insert, auditBatchMax, 1)
	return l
}

// write waits until row is committed (or failed). Were the request's
// context to end first, the row is still written.
func (l *auditLog) write(ctx context.Context, row *store.AuditEntry) error {
	return l.group.Do(context.WithoutCancel(ctx), row)
}

func (l *auditLog) insert(ctx context.Context, rows []*store.AuditEntry) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	return l.q.AuditInsertMany(ctx, rows)
}
