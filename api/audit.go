package api

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/uptrace/bun"
)

// Audit outcomes.
const (
	outcomeSuccess  = "success"
	outcomeNotFound = "not_found"
)

// auditRow is one API read of patient data: who (the doctor or API key),
// what (action and object), when, from where, and how it ended. A doctor
// asking for another doctor's object is recorded as not_found.
type auditRow struct {
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

// audit records an access. Patient data is never returned unaudited: when
// the row cannot be written the request fails.
func (h *handlers) audit(ctx context.Context, db bun.IDB, action, objectType, objectID, outcome string, detail map[string]any) error {
	c := callerOf(ctx)
	row := &auditRow{
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
	if _, err := db.NewInsert().Model(row).Returning("NULL").Exec(ctx); err != nil {
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
	db      *bun.DB
	timeout time.Duration

	mu      sync.Mutex
	queue   []auditWrite
	running bool
}

type auditWrite struct {
	row  *auditRow
	done chan error
}

// auditBatchMax bounds one INSERT.
const auditBatchMax = 500

func newAuditLog(db *bun.DB, timeout time.Duration) *auditLog {
	return &auditLog{db: db, timeout: timeout}
}

// write queues row and waits until it is committed (or failed). Were the
// request's context to end first, the row is still written.
func (l *auditLog) write(ctx context.Context, row *auditRow) error {
	w := auditWrite{row: row, done: make(chan error, 1)}
	l.mu.Lock()
	l.queue = append(l.queue, w)
	if !l.running {
		l.running = true
		go l.flush()
	}
	l.mu.Unlock()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush writes whatever is queued, again and again, until the queue stays
// empty; the rows that arrive during one INSERT make up the next.
func (l *auditLog) flush() {
	for {
		l.mu.Lock()
		n := min(len(l.queue), auditBatchMax)
		if n == 0 {
			l.running = false
			l.mu.Unlock()
			return
		}
		batch := l.queue[:n:n]
		l.queue = l.queue[n:]
		l.mu.Unlock()

		rows := make([]*auditRow, len(batch))
		for i, w := range batch {
			rows[i] = w.row
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
		_, err := l.db.NewInsert().Model(&rows).Returning("NULL").Exec(ctx)
		cancel()
		for _, w := range batch {
			w.done <- err
		}
	}
}
