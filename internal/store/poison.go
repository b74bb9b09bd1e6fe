package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// PoisonMessageExecutor holds the statements on poison_messages: the
// messages the router gave up on, drained from the poison topic, which
// operators list, replay or discard.
type PoisonMessageExecutor interface {
	PoisonMessageUpsert(ctx context.Context, params *PoisonMessageUpsertParams) error
	PoisonMessageGetPosition(ctx context.Context, id string) (*PoisonMessagePosition, error)
	PoisonMessageList(ctx context.Context, params *PoisonMessageListParams) ([]PoisonMessage, error)
	PoisonMessageGet(ctx context.Context, id string) (*PoisonMessage, error)
	PoisonMessageGetHead(ctx context.Context, id string) (*PoisonMessage, error)
	PoisonMessageListIDs(ctx context.Context, params *PoisonMessageListIDsParams) ([]string, error)
	PoisonMessageMove(ctx context.Context, params *PoisonMessageMoveParams) (bool, error)
	PoisonMessageCountByTopicClass(ctx context.Context, state string) ([]PoisonMessageCount, error)
	PoisonMessageGetOldestSeen(ctx context.Context, state string) (time.Time, bool, error)
}

// PoisonMessage is a row of poison_messages.
type PoisonMessage struct {
	bun.BaseModel `bun:"table:poison_messages,alias:message"`

	ID              string            `bun:"id,pk"`
	MessageID       string            `bun:"message_id"`
	Topic           string            `bun:"topic"`
	Handler         string            `bun:"handler"`
	Class           string            `bun:"class"`
	Reason          string            `bun:"reason"`
	Attempts        int               `bun:"attempts"`
	TimesPoisoned   int               `bun:"times_poisoned"`
	Payload         string            `bun:"payload"`
	PayloadEncoding string            `bun:"payload_encoding"`
	Metadata        map[string]string `bun:"metadata,type:json"`
	FirstSeenAt     time.Time         `bun:"first_seen_at"`
	LastSeenAt      time.Time         `bun:"last_seen_at"`
	State           string            `bun:"state"`
	StateReason     string            `bun:"state_reason"`
	StateChangedBy  string            `bun:"state_changed_by"`
	StateChangedAt  *time.Time        `bun:"state_changed_at"`
}

// PoisonMessageUpsertParams stores a poisoning of message MessageID by
// Topic's Handler: a new row (ID, seen At, poisoned once), or one more
// poisoning of the row that has it, which takes the new class, reason,
// attempts, payload, metadata and State.
type PoisonMessageUpsertParams struct {
	ID              string
	MessageID       string
	Topic           string
	Handler         string
	Class           string
	Reason          string
	Attempts        int
	Payload         string
	PayloadEncoding string
	Metadata        map[string]string
	At              time.Time
	State           string
}

// PoisonMessagePosition is where a message sits in the listing order.
type PoisonMessagePosition struct {
	FirstSeenAt time.Time
	ID          string
}

// PoisonMessageListParams selects messages; zero fields select everything.
type PoisonMessageListParams struct {
	Topic string
	// Class matches the class exactly; else ReasonContains, when set, is a
	// substring of the reason (LIKE's wildcards in it are dropped).
	Class          string
	ReasonContains string
	State          string
	Since          time.Time
	// After is the position of the last message of the previous page.
	After *PoisonMessagePosition
	Limit int
}

// PoisonMessageListIDsParams selects the ids of Topic's messages in State.
type PoisonMessageListIDsParams struct {
	State string
	Topic string
}

// PoisonMessageMoveParams moves message ID from state From to To, by By
// for Reason, At.
type PoisonMessageMoveParams struct {
	ID     string
	From   string
	To     string
	Reason string
	By     string
	At     time.Time
}

// PoisonMessageCount is how many messages of a topic and class there are.
type PoisonMessageCount struct {
	Topic string `bun:"topic"`
	Class string `bun:"class"`
	N     int    `bun:"n"`
}

func (q *Queries) PoisonMessageUpsert(ctx context.Context, params *PoisonMessageUpsertParams) error {
	meta, err := json.Marshal(params.Metadata)
	if err != nil {
		return fmt.Errorf("encode poison metadata: %w", err)
	}
	_, err = q.db.NewRaw(`INSERT INTO poison_messages (id, message_id, topic, handler, class, reason, attempts, times_poisoned,
	payload, payload_encoding, metadata, first_seen_at, last_seen_at, state)
VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)
ON CONFLICT (topic, handler, message_id) DO UPDATE SET
	times_poisoned = poison_messages.times_poisoned + 1, last_seen_at = excluded.last_seen_at,
	class = excluded.class, reason = excluded.reason, attempts = excluded.attempts,
	payload = excluded.payload, payload_encoding = excluded.payload_encoding, metadata = excluded.metadata,
	state = excluded.state`,
		params.ID, params.MessageID, params.Topic, params.Handler, params.Class, params.Reason, params.Attempts,
		params.Payload, params.PayloadEncoding, string(meta), params.At, params.At, params.State).Exec(ctx)
	if err != nil {
		return fmt.Errorf("upsert poison message: %w", err)
	}
	return nil
}

// PoisonMessageGetPosition is message id's position, or ErrNotFound.
func (q *Queries) PoisonMessageGetPosition(ctx context.Context, id string) (*PoisonMessagePosition, error) {
	var m PoisonMessage
	if err := one(q.db.NewSelect().Model(&m).Column("first_seen_at", "id").Where("id = ?", id).Scan(ctx), "get poison message position"); err != nil {
		return nil, err
	}
	return &PoisonMessagePosition{FirstSeenAt: m.FirstSeenAt, ID: m.ID}, nil
}

// PoisonMessageList lists the selected messages, oldest first.
func (q *Queries) PoisonMessageList(ctx context.Context, params *PoisonMessageListParams) ([]PoisonMessage, error) {
	var out []PoisonMessage
	s := q.db.NewSelect().Model(&out)
	if params.Topic != "" {
		s = s.Where("topic = ?", params.Topic)
	}
	switch {
	case params.Class != "":
		s = s.Where("class = ?", params.Class)
	case params.ReasonContains != "":
		s = s.Where("reason LIKE ?", "%"+escapeLike(params.ReasonContains)+"%")
	}
	if params.State != "" {
		s = s.Where("state = ?", params.State)
	}
	if !params.Since.IsZero() {
		s = s.Where("last_seen_at >= ?", params.Since.UTC())
	}
	if a := params.After; a != nil {
		s = s.Where("(first_seen_at > ? OR (first_seen_at = ? AND id > ?))", a.FirstSeenAt, a.FirstSeenAt, a.ID)
	}
	s = s.Order("first_seen_at", "id")
	if params.Limit > 0 {
		s = s.Limit(int64(params.Limit))
	}
	if err := s.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list poison messages: %w", err)
	}
	return out, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer("%", "", "_", "").Replace(s)
}

// PoisonMessageGet is message id, or ErrNotFound.
func (q *Queries) PoisonMessageGet(ctx context.Context, id string) (*PoisonMessage, error) {
	var m PoisonMessage
	if err := one(q.db.NewSelect().Model(&m).Where("id = ?", id).Scan(ctx), "get poison message"); err != nil {
		return nil, err
	}
	return &m, nil
}

// PoisonMessageGetHead is message id's id, topic, handler and state (no
// payload), or ErrNotFound.
func (q *Queries) PoisonMessageGetHead(ctx context.Context, id string) (*PoisonMessage, error) {
	var m PoisonMessage
	if err := one(q.db.NewSelect().Column("id", "topic", "handler", "state").Model(&m).Where("id = ?", id).Scan(ctx), "get poison message"); err != nil {
		return nil, err
	}
	return &m, nil
}

// PoisonMessageListIDs lists the selected ids, oldest first.
func (q *Queries) PoisonMessageListIDs(ctx context.Context, params *PoisonMessageListIDsParams) ([]string, error) {
	var ids []string
	if err := q.db.NewSelect().Model((*PoisonMessage)(nil)).Column("id").Where("state = ?", params.State).Where("topic = ?", params.Topic).
		Order("first_seen_at", "id").Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("list poison message ids: %w", err)
	}
	return ids, nil
}

// PoisonMessageMove reports whether it moved the message: false when it
// is not in state From (any more).
func (q *Queries) PoisonMessageMove(ctx context.Context, params *PoisonMessageMoveParams) (bool, error) {
	res, err := q.db.NewRaw(`UPDATE poison_messages SET state = ?, state_reason = ?, state_changed_by = ?, state_changed_at = ?
WHERE id = ? AND state = ?`, params.To, params.Reason, params.By, params.At, params.ID, params.From).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("move poison message %s to %s: %w", params.ID, params.To, err)
	}
	// As before the data layer: a driver that cannot count counts none.
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// PoisonMessageCountByTopicClass counts the messages in state by topic and
// class.
func (q *Queries) PoisonMessageCountByTopicClass(ctx context.Context, state string) ([]PoisonMessageCount, error) {
	var rows []PoisonMessageCount
	if err := q.db.NewRaw(`SELECT topic, class, COUNT(*) AS n FROM poison_messages WHERE state = ? GROUP BY topic, class`, state).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("count poison messages: %w", err)
	}
	return rows, nil
}

// PoisonMessageGetOldestSeen is the first_seen_at of the oldest message in
// state; ok=false when there is none.
func (q *Queries) PoisonMessageGetOldestSeen(ctx context.Context, state string) (time.Time, bool, error) {
	var oldest []PoisonMessage
	if err := q.db.NewSelect().Model(&oldest).Column("id", "first_seen_at").Where("state = ?", state).
		Order("first_seen_at").Limit(1).Scan(ctx); err != nil {
		return time.Time{}, false, fmt.Errorf("oldest poison message: %w", err)
	}
	if len(oldest) == 0 {
		return time.Time{}, false, nil
	}
	return oldest[0].FirstSeenAt, true, nil
}
