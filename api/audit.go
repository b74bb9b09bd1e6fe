package api

import (
	"context"
	"fmt"
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
	if _, err := db.NewInsert().Model(row).Exec(ctx); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}
