package store

import (
	"context"
	"fmt"
	"time"
)

// EscalationExecutor holds the statements of the critical-result
// escalation ladder: escalations (one ladder per notification, its level,
// state and next step's time) and escalation_steps (each step taken), with
// the reads of notifications and deliveries the ladder decides on.
type EscalationExecutor interface {
	EscalationListBreaches(ctx context.Context, params *EscalationListBreachesParams) ([]EscalationBreach, error)
	EscalationStart(ctx context.Context, params *EscalationStartParams) error
	EscalationListDue(ctx context.Context, params *EscalationListDueParams) ([]string, error)
	EscalationGetForUpdate(ctx context.Context, notificationID string) (*Escalation, error)
	EscalationAdvance(ctx context.Context, params *EscalationAdvanceParams) error
	EscalationSetState(ctx context.Context, params *EscalationSetStateParams) error
	EscalationCountAcknowledgedCopies(ctx context.Context, dedupKeyPrefix string) (int, error)
	EscalationListTriedChannels(ctx context.Context, notificationID string) ([]string, error)
	EscalationStepInsert(ctx context.Context, step *EscalationStep) error
	EscalationStepListKinds(ctx context.Context, notificationID string) ([]string, error)
	EscalationStepList(ctx context.Context, notificationID string) ([]EscalationStep, error)
}

// Escalation is the state of one notification's ladder.
type Escalation struct {
	Level  int       `bun:"level"`
	State  string    `bun:"state"`
	NextAt time.Time `bun:"next_at"`
}

// EscalationBreach is a notification past its SLA that has no ladder yet.
type EscalationBreach struct {
	ID        string    `bun:"id"`
	CreatedAt time.Time `bun:"created_at"`
}

// EscalationStep is a row of escalation_steps: one step taken.
type EscalationStep struct {
	NotificationID          string    `bun:"notification_id"`
	Level                   int       `bun:"level"`
	Kind                    string    `bun:"kind"`
	Channel                 string    `bun:"channel"`
	DoctorID                string    `bun:"doctor_id"`
	EscalatedNotificationID string    `bun:"escalated_notification_id"`
	At                      time.Time `bun:"at"`
}

// EscalationListBreachesParams selects the unacknowledged notifications of
// Priority in State, the doctor's own (not covering copies), made in
// (CreatedAfter, CreatedBefore], that have no ladder.
type EscalationListBreachesParams struct {
	Priority      string
	State         string
	CreatedBefore time.Time
	CreatedAfter  time.Time
}

// EscalationStartParams starts NotificationID's ladder in State, its first
// step due at NextAt, made At.
type EscalationStartParams struct {
	NotificationID string
	State          string
	NextAt         time.Time
	At             time.Time
}

// EscalationListDueParams selects at most Limit ladders in State whose next
// step is due at Now.
type EscalationListDueParams struct {
	State string
	Now   time.Time
	Limit int
}

// EscalationAdvanceParams moves a ladder to Level, its next step due at
// NextAt, at At.
type EscalationAdvanceParams struct {
	NotificationID string
	Level          int
	NextAt         time.Time
	At             time.Time
}

// EscalationSetStateParams sets a ladder's State at At.
type EscalationSetStateParams struct {
	NotificationID string
	State          string
	At             time.Time
}

// EscalationListBreaches lists at most 1000 breaches, oldest first.
func (q *Queries) EscalationListBreaches(ctx context.Context, params *EscalationListBreachesParams) ([]EscalationBreach, error) {
	var out []EscalationBreach
	if err := q.db.NewRaw(`SELECT n.id, n.created_at FROM notifications n
WHERE n.priority = ? AND n.acknowledged_at IS NULL AND n.state = ? AND n.on_behalf_of IS NULL
  AND n.created_at <= ? AND n.created_at > ?
  AND NOT EXISTS (SELECT 1 FROM escalations e WHERE e.notification_id = n.id)
ORDER BY n.created_at LIMIT 1000`, params.Priority, params.State, params.CreatedBefore, params.CreatedAfter).Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("list escalation breaches: %w", err)
	}
	return out, nil
}

// EscalationStart starts a ladder at level 0; a notification that has one
// keeps it.
func (q *Queries) EscalationStart(ctx context.Context, params *EscalationStartParams) error {
	if _, err := q.db.NewRaw(`INSERT INTO escalations (notification_id, level, state, next_at, created_at, updated_at)
VALUES (?, 0, ?, ?, ?, ?) ON CONFLICT (notification_id) DO NOTHING`, params.NotificationID, params.State, params.NextAt, params.At, params.At).Exec(ctx); err != nil {
		return fmt.Errorf("start escalation: %w", err)
	}
	return nil
}

// EscalationListDue lists the due ladders' notification ids, the longest
// due first.
func (q *Queries) EscalationListDue(ctx context.Context, params *EscalationListDueParams) ([]string, error) {
	var due []string
	if err := q.db.NewRaw(`SELECT notification_id FROM escalations WHERE state = ? AND next_at <= ? ORDER BY next_at, notification_id LIMIT ?`,
		params.State, params.Now, params.Limit).Scan(ctx, &due); err != nil {
		return nil, fmt.Errorf("list due escalations: %w", err)
	}
	return due, nil
}

// EscalationGetForUpdate loads a ladder and, on PostgreSQL, locks it for
// the transaction; ErrNotFound when there is none or another transaction
// holds it (SKIP LOCKED: another replica is taking its step).
func (q *Queries) EscalationGetForUpdate(ctx context.Context, notificationID string) (*Escalation, error) {
	lock := ""
	if q.pg {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	var e Escalation
	if err := one(q.db.NewRaw(`SELECT level, state, next_at FROM escalations WHERE notification_id = ?`+lock, notificationID).Scan(ctx, &e), "get escalation"); err != nil {
		return nil, err
	}
	return &e, nil
}

func (q *Queries) EscalationAdvance(ctx context.Context, params *EscalationAdvanceParams) error {
	if _, err := q.db.NewRaw(`UPDATE escalations SET level = ?, next_at = ?, updated_at = ? WHERE notification_id = ?`,
		params.Level, params.NextAt, params.At, params.NotificationID).Exec(ctx); err != nil {
		return fmt.Errorf("advance escalation: %w", err)
	}
	return nil
}

func (q *Queries) EscalationSetState(ctx context.Context, params *EscalationSetStateParams) error {
	if _, err := q.db.NewRaw(`UPDATE escalations SET state = ?, updated_at = ? WHERE notification_id = ?`,
		params.State, params.At, params.NotificationID).Exec(ctx); err != nil {
		return fmt.Errorf("set escalation state %s: %w", params.State, err)
	}
	return nil
}

// EscalationCountAcknowledgedCopies counts the acknowledged notifications
// whose dedup key starts with dedupKeyPrefix: the copies the ladder made.
// The prefix has no LIKE wildcards of its own.
func (q *Queries) EscalationCountAcknowledgedCopies(ctx context.Context, dedupKeyPrefix string) (int, error) {
	var k int
	if err := q.db.NewRaw(`SELECT COUNT(*) FROM notifications WHERE dedup_key LIKE ? AND acknowledged_at IS NOT NULL`,
		dedupKeyPrefix+"%").Scan(ctx, &k); err != nil {
		return 0, fmt.Errorf("count acknowledged copies: %w", err)
	}
	return k, nil
}

// EscalationListTriedChannels lists the channels the notification has a
// delivery on.
func (q *Queries) EscalationListTriedChannels(ctx context.Context, notificationID string) ([]string, error) {
	var tried []string
	if err := q.db.NewRaw(`SELECT channel FROM deliveries WHERE notification_id = ?`, notificationID).Scan(ctx, &tried); err != nil {
		return nil, fmt.Errorf("list tried channels: %w", err)
	}
	return tried, nil
}

func (q *Queries) EscalationStepInsert(ctx context.Context, step *EscalationStep) error {
	if _, err := q.db.NewRaw(`INSERT INTO escalation_steps (notification_id, level, kind, channel, doctor_id, escalated_notification_id, at)
VALUES (?, ?, ?, ?, ?, ?, ?)`, step.NotificationID, step.Level, step.Kind, step.Channel, step.DoctorID, step.EscalatedNotificationID, step.At).Exec(ctx); err != nil {
		return fmt.Errorf("insert escalation step: %w", err)
	}
	return nil
}

// EscalationStepListKinds lists the kinds of the steps taken.
func (q *Queries) EscalationStepListKinds(ctx context.Context, notificationID string) ([]string, error) {
	var done []string
	if err := q.db.NewRaw(`SELECT kind FROM escalation_steps WHERE notification_id = ?`, notificationID).Scan(ctx, &done); err != nil {
		return nil, fmt.Errorf("list escalation step kinds: %w", err)
	}
	return done, nil
}

// EscalationStepList lists the steps taken, by level.
func (q *Queries) EscalationStepList(ctx context.Context, notificationID string) ([]EscalationStep, error) {
	var out []EscalationStep
	if err := q.db.NewRaw(`SELECT level, kind, channel, doctor_id, escalated_notification_id, at FROM escalation_steps
WHERE notification_id = ? ORDER BY level`, notificationID).Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("list escalation steps: %w", err)
	}
	for i := range out {
		out[i].NotificationID = notificationID
	}
	return out, nil
}
