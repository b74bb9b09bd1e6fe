package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// AuditExecutor holds the operators' writes to audit_log.
type AuditExecutor interface {
	AuditLogInsert(ctx context.Context, entry *AuditLogEntry) error
}

// AuditLogEntry is one action recorded in audit_log: who (ActorType,
// ActorID, from SourceIP with UserAgent) did Action on the object
// (ObjectType, ObjectID) with Outcome, when (OccurredAt), and Detail,
// stored as JSON.
type AuditLogEntry struct {
	OccurredAt time.Time
	ActorType  string
	ActorID    string
	Action     string
	ObjectType string
	ObjectID   string
	Outcome    string
	SourceIP   string
	UserAgent  string
	Detail     map[string]any
}

func (q *Queries) AuditLogInsert(ctx context.Context, e *AuditLogEntry) error {
	raw, err := json.Marshal(e.Detail)
	if err != nil {
		return fmt.Errorf("encode audit detail: %w", err)
	}
	if _, err := q.db.NewRaw(`INSERT INTO audit_log (occurred_at, actor_type, actor_id, action, object_type, object_id, outcome, source_ip, user_agent, detail)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.OccurredAt, e.ActorType, e.ActorID, e.Action, e.ObjectType, e.ObjectID, e.Outcome,
		e.SourceIP, e.UserAgent, string(raw)).Exec(ctx); err != nil {
		return fmt.Errorf("insert audit %s: %w", e.Action, err)
	}
	return nil
}
