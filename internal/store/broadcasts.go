package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
)

// BroadcastExecutor holds the statements on broadcasts (an announcement to
// an audience of doctors and the fan-out's checkpoint) and the reads of
// its audience and its notifications' outcomes.
type BroadcastExecutor interface {
	BroadcastInsert(ctx context.Context, b *Broadcast) error
	BroadcastGet(ctx context.Context, id string) (*Broadcast, error)
	BroadcastCountOutcomes(ctx context.Context, sourceEventID string) (BroadcastOutcomes, error)
	BroadcastGetNextForUpdate(ctx context.Context, states []string) (*Broadcast, error)
	BroadcastStart(ctx context.Context, params *BroadcastStartParams) error
	BroadcastFinish(ctx context.Context, params *BroadcastFinishParams) error
	BroadcastSetCheckpoint(ctx context.Context, params *BroadcastSetCheckpointParams) error
	BroadcastCountAudience(ctx context.Context, audience *BroadcastAudience) (int, error)
	BroadcastListAudience(ctx context.Context, params *BroadcastListAudienceParams) ([]domain.Doctor, error)
}

// Broadcast is a row of broadcasts.
type Broadcast struct {
	bun.BaseModel `bun:"table:broadcasts"`

	ID          string          `bun:"id,pk"`
	Category    string          `bun:"category"`
	Title       string          `bun:"title"`
	Body        string          `bun:"body"`
	Kind        string          `bun:"audience_kind"`
	Value       json.RawMessage `bun:"audience_value,type:json"`
	State       string          `bun:"state"`
	Checkpoint  string          `bun:"checkpoint"`
	Targeted    int             `bun:"targeted"`
	Created     int             `bun:"created"`
	APIKeyID    string          `bun:"api_key_id"`
	CreatedAt   time.Time       `bun:"created_at"`
	StartedAt   *time.Time      `bun:"started_at"`
	CompletedAt *time.Time      `bun:"completed_at"`
}

// BroadcastOutcomes counts a broadcast's notifications delivered on at
// least one channel, and those with no delivery left to try and none
// delivered.
type BroadcastOutcomes struct {
	Delivered int
	Failed    int
}

// BroadcastAudience selects the active doctors of a broadcast: those of
// Clinic, of Specialty, or listed in Doctors (by id or external user id);
// with none set, every active doctor.
type BroadcastAudience struct {
	Clinic    *string
	Specialty *string
	Doctors   []string
}

// BroadcastStartParams moves broadcast ID to State with Targeted doctors,
// started At.
type BroadcastStartParams struct {
	ID       string
	State    string
	Targeted int
	At       time.Time
}

// BroadcastFinishParams moves broadcast ID to State, adding the last
// chunk's Created notifications, completed At.
type BroadcastFinishParams struct {
	ID      string
	State   string
	Created int
	At      time.Time
}

// BroadcastSetCheckpointParams moves broadcast ID's checkpoint past the
// doctor Checkpoint, adding the chunk's Created notifications.
type BroadcastSetCheckpointParams struct {
	ID         string
	Checkpoint string
	Created    int
}

// BroadcastListAudienceParams lists at most Limit doctors of Audience
// whose id is after After, by id.
type BroadcastListAudienceParams struct {
	Audience BroadcastAudience
	After    string
	Limit    int
}

func (q *Queries) BroadcastInsert(ctx context.Context, b *Broadcast) error {
	if _, err := q.db.NewInsert().Model(b).Exec(ctx); err != nil {
		return fmt.Errorf("insert broadcast: %w", err)
	}
	return nil
}

// BroadcastGet is broadcast id, or ErrNotFound.
func (q *Queries) BroadcastGet(ctx context.Context, id string) (*Broadcast, error) {
	var b Broadcast
	if err := one(q.db.NewSelect().Model(&b).Where("id = ?", id).Scan(ctx), "get broadcast"); err != nil {
		return nil, err
	}
	return &b, nil
}

// BroadcastCountOutcomes counts the outcomes of the notifications made
// from sourceEventID.
func (q *Queries) BroadcastCountOutcomes(ctx context.Context, sourceEventID string) (BroadcastOutcomes, error) {
	var o BroadcastOutcomes
	if err := q.db.NewRaw(`SELECT
  COALESCE(SUM(CASE WHEN ok > 0 THEN 1 ELSE 0 END), 0),
  COALESCE(SUM(CASE WHEN ok = 0 AND open = 0 THEN 1 ELSE 0 END), 0)
FROM (SELECT n.id,
        SUM(CASE WHEN d.status IN ('sent', 'delivered', 'read', 'acknowledged') THEN 1 ELSE 0 END) AS ok,
        SUM(CASE WHEN d.status IN ('queued', 'sending') THEN 1 ELSE 0 END) AS open
      FROM notifications n JOIN deliveries d ON d.notification_id = n.id
      WHERE n.source_event_id = ? GROUP BY n.id) per_notification`, sourceEventID).Scan(ctx, &o.Delivered, &o.Failed); err != nil {
		return o, fmt.Errorf("count broadcast outcomes: %w", err)
	}
	return o, nil
}

// BroadcastGetNextForUpdate is the oldest broadcast in one of states and,
// on PostgreSQL, locks it for the transaction, skipping one another
// transaction holds; ErrNotFound when there is none.
func (q *Queries) BroadcastGetNextForUpdate(ctx context.Context, states []string) (*Broadcast, error) {
	lock := ""
	if q.pg {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	var b Broadcast
	if err := one(q.db.NewRaw(`SELECT * FROM broadcasts WHERE state IN (?) ORDER BY created_at, id LIMIT 1`+lock, bun.List(states)).Scan(ctx, &b), "get next broadcast"); err != nil {
		return nil, err
	}
	return &b, nil
}

func (q *Queries) BroadcastStart(ctx context.Context, params *BroadcastStartParams) error {
	if _, err := q.db.NewRaw(`UPDATE broadcasts SET state = ?, targeted = ?, started_at = ? WHERE id = ?`,
		params.State, params.Targeted, params.At, params.ID).Exec(ctx); err != nil {
		return fmt.Errorf("start broadcast: %w", err)
	}
	return nil
}

func (q *Queries) BroadcastFinish(ctx context.Context, params *BroadcastFinishParams) error {
	if _, err := q.db.NewRaw(`UPDATE broadcasts SET state = ?, created = created + ?, completed_at = ? WHERE id = ?`,
		params.State, params.Created, params.At, params.ID).Exec(ctx); err != nil {
		return fmt.Errorf("finish broadcast: %w", err)
	}
	return nil
}

func (q *Queries) BroadcastSetCheckpoint(ctx context.Context, params *BroadcastSetCheckpointParams) error {
	if _, err := q.db.NewRaw(`UPDATE broadcasts SET checkpoint = ?, created = created + ? WHERE id = ?`,
		params.Checkpoint, params.Created, params.ID).Exec(ctx); err != nil {
		return fmt.Errorf("set broadcast checkpoint: %w", err)
	}
	return nil
}

func (q *Queries) BroadcastCountAudience(ctx context.Context, audience *BroadcastAudience) (int, error) {
	var n int
	if err := q.audience(audience).ColumnExpr("COUNT(*)").Scan(ctx, &n); err != nil {
		return 0, fmt.Errorf("count broadcast audience: %w", err)
	}
	return n, nil
}

func (q *Queries) BroadcastListAudience(ctx context.Context, params *BroadcastListAudienceParams) ([]domain.Doctor, error) {
	var rows []Doctor
	if err := q.audience(&params.Audience).Model(&rows).Where("id > ?", params.After).Order("id").Limit(int64(params.Limit)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list broadcast audience: %w", err)
	}
	docs := make([]domain.Doctor, len(rows))
	for i := range rows {
		docs[i] = rows[i].Domain()
	}
	return docs, nil
}

// audience selects the audience's active doctors.
func (q *Queries) audience(a *BroadcastAudience) *bun.SelectQuery {
	s := q.db.NewSelect().Model((*Doctor)(nil)).Where("active")
	switch {
	case a.Clinic != nil:
		s = s.Where("clinic = ?", *a.Clinic)
	case a.Specialty != nil:
		s = s.Where("specialty = ?", *a.Specialty)
	case a.Doctors != nil:
		s = s.Where("(id IN (?) OR external_user_id IN (?))", bun.List(a.Doctors), bun.List(a.Doctors))
	}
	return s
}
