// Package poison is the operators' side of the poison topic: a consumer
// drains it into the poison_messages table, and operators list, inspect,
// replay (back to the original topic, through the outbox, with the original
// message id) or discard what is there, from the CLI or the admin API.
// Every replay, discard and reveal of a payload is written to the audit log.
// Publish is replay's sibling for a message that was never poisoned: an
// operator's own payload, published to an inbound topic (`rfd publish`).
package poison

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/outbox"
	"github.com/rfd-notify/rfd/router"
)

// States of a poisoned message.
const (
	StatePending   = "pending"
	StateReplayed  = "replayed"
	StateDiscarded = "discarded"
)

// States lists every state.
var States = []string{StatePending, StateReplayed, StateDiscarded}

// Classes of poisoning (router.PoisonClassKey); "unknown" for a message
// poisoned by something other than this service's router.
const (
	ClassPermanent = "permanent"
	ClassExhausted = "exhausted"
	ClassUnknown   = "unknown"
)

// DrainConsumer is the inbox consumer name of the poison drain.
const DrainConsumer = "poison-drain"

// maxReason bounds the stored reason; an error chain can be long.
const maxReason = 2000

// Message is one poisoned message.
type Message struct {
	ID              string            `json:"id"`
	MessageID       string            `json:"message_id"`
	Topic           string            `json:"topic"`
	Handler         string            `json:"handler"`
	Class           string            `json:"class"`
	Reason          string            `json:"reason"`
	Attempts        int               `json:"attempts"`
	TimesPoisoned   int               `json:"times_poisoned"`
	Payload         string            `json:"payload"`
	PayloadEncoding string            `json:"payload_encoding"`
	Metadata        map[string]string `json:"metadata"`
	FirstSeenAt     time.Time         `json:"first_seen_at"`
	LastSeenAt      time.Time         `json:"last_seen_at"`
	State           string            `json:"state"`
	StateReason     string            `json:"state_reason,omitempty"`
	StateChangedBy  string            `json:"state_changed_by,omitempty"`
	StateChangedAt  *time.Time        `json:"state_changed_at,omitempty"`
}

func fromRow(r *store.PoisonMessage) Message {
	return Message{
		ID: r.ID, MessageID: r.MessageID, Topic: r.Topic, Handler: r.Handler, Class: r.Class, Reason: r.Reason,
		Attempts: r.Attempts, TimesPoisoned: r.TimesPoisoned, Payload: r.Payload, PayloadEncoding: r.PayloadEncoding,
		Metadata: r.Metadata, FirstSeenAt: r.FirstSeenAt, LastSeenAt: r.LastSeenAt, State: r.State,
		StateReason: r.StateReason, StateChangedBy: r.StateChangedBy, StateChangedAt: r.StateChangedAt,
	}
}

// RawPayload is the payload as it was poisoned.
func (m Message) RawPayload() ([]byte, error) {
	if m.PayloadEncoding == "base64" {
		b, err := base64.StdEncoding.DecodeString(m.Payload)
		if err != nil {
			return nil, fmt.Errorf("poison %s: decode payload: %w", m.ID, err)
		}
		return b, nil
	}
	return []byte(m.Payload), nil
}

// Actor is who acts on poisoned messages, for the audit log.
type Actor struct {
	// Type is "operator" (the CLI, ID the OS user) or "api_key".
	Type      string
	ID        string
	IP        string
	UserAgent string
}

// ErrNotFound is returned for an id that names no poisoned message.
var ErrNotFound = errors.New("no such poisoned message")

// Service drains, lists, replays and discards poisoned messages.
type Service struct {
	db     *bun.DB
	q      *store.Queries
	outbox *outbox.Publisher
	inbox  *store.Inbox
	now    func() time.Time
}

// New returns the service. ob publishes replays; now is the clock.
func New(db *bun.DB, ob *outbox.Publisher, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{db: db, q: store.NewQueries(db), outbox: ob, inbox: store.NewInbox(db), now: now}
}

// DB is the database the service works on.
func (s *Service) DB() *bun.DB { return s.db }

// Handle is the poison drain's router handler: it stores msg, once per
// poisoning. A redelivered poison record (same poisoning id) changes
// nothing; the same message poisoned again counts one more time.
func (s *Service) Handle(msg *message.Message) error {
	id := msg.Metadata.Get(router.PoisonIDKey)
	if id == "" {
		id = msg.UUID
	}
	_, err := s.inbox.Process(msg.Context(), DrainConsumer, id, func(ctx context.Context, tx bun.Tx) error {
		return s.Store(ctx, tx, msg)
	})
	return err
}

// Store upserts msg, a message of the poison topic, inside tx.
func (s *Service) Store(ctx context.Context, tx bun.Tx, msg *message.Message) error {
	md := map[string]string(msg.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	payload, enc := string(msg.Payload), "utf8"
	if !utf8.Valid(msg.Payload) {
		payload, enc = base64.StdEncoding.EncodeToString(msg.Payload), "base64"
	}
	class := md[router.PoisonClassKey]
	if class == "" {
		class = ClassUnknown
	}
	attempts, _ := strconv.Atoi(md[router.AttemptsKey])
	reason := md[middleware.ReasonForPoisonedKey]
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	err := store.NewQueries(tx).PoisonMessageUpsert(ctx, &store.PoisonMessageUpsertParams{
		ID: uuid.NewString(), MessageID: msg.UUID, Topic: md[middleware.PoisonedTopicKey], Handler: md[middleware.PoisonedHandlerKey],
		Class: class, Reason: reason, Attempts: attempts, Payload: payload, PayloadEncoding: enc, Metadata: md,
		At: s.now().UTC(), State: StatePending,
	})
	if err != nil {
		return fmt.Errorf("poison: store message: %w", err)
	}
	return nil
}

// Filter selects poisoned messages; zero fields select everything.
type Filter struct {
	Topic string
	// Reason matches the class (permanent, exhausted) exactly, or else is
	// a substring of the reason.
	Reason string
	State  string
	Since  time.Time
	// After is the id of the last message of the previous page.
	After string
	Limit int
}

// params is the data layer's selection of f, after the page that ends at
// after (nil: from the start).
func (f Filter) params(after *store.PoisonMessagePosition) *store.PoisonMessageListParams {
	p := &store.PoisonMessageListParams{Topic: f.Topic, State: f.State, Since: f.Since, After: after, Limit: f.Limit}
	switch f.Reason {
	case "":
	case ClassPermanent, ClassExhausted, ClassUnknown:
		p.Class = f.Reason
	default:
		p.ReasonContains = f.Reason
	}
	return p
}

// Validate checks a filter's values.
func (f Filter) Validate() error {
	if f.State != "" && !contains(States, f.State) {
		return fmt.Errorf("state: want one of %s, got %q", strings.Join(States, ", "), f.State)
	}
	if f.Limit < 0 {
		return fmt.Errorf("limit: must not be negative")
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// List returns the messages f selects, oldest first.
func (s *Service) List(ctx context.Context, f Filter) ([]Message, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var after *store.PoisonMessagePosition
	if f.After != "" {
		pos, err := s.q.PoisonMessageGetPosition(ctx, f.After)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("after: %w", ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("poison: list: %w", err)
		}
		after = pos
	}
	rows, err := s.q.PoisonMessageList(ctx, f.params(after))
	if err != nil {
		return nil, fmt.Errorf("poison: %w", err)
	}
	out := make([]Message, 0, len(rows))
	for i := range rows {
		out = append(out, fromRow(&rows[i]))
	}
	return out, nil
}

// Get returns one message.
func (s *Service) Get(ctx context.Context, id string) (Message, error) {
	m, err := s.q.PoisonMessageGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Message{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Message{}, fmt.Errorf("poison: get: %w", err)
	}
	return fromRow(m), nil
}

// Outcome is what happened to one message of a replay or discard.
type Outcome struct {
	ID      string `json:"id"`
	Topic   string `json:"topic"`
	Handler string `json:"handler"`
	// Result is replayed, discarded, would_replay, would_discard, or
	// skipped (Detail says why).
	Result string `json:"result"`
	Detail string `json:"detail,omitempty"`
}

// Results of Outcome.
const (
	ResultReplayed     = "replayed"
	ResultDiscarded    = "discarded"
	ResultWouldReplay  = "would_replay"
	ResultWouldDiscard = "would_discard"
	ResultSkipped      = "skipped"
)

// stripOnReplay are the metadata keys the poisoning added; a replayed
// message goes back as it first arrived.
var stripOnReplay = []string{
	middleware.ReasonForPoisonedKey, middleware.PoisonedTopicKey, middleware.PoisonedHandlerKey,
	middleware.PoisonedSubscriberKey, router.AttemptsKey, router.PoisonClassKey, router.PoisonIDKey,
}

// Replay publishes each pending message back to its original topic through
// the outbox, with its original message id (so the consumer's inbox still
// dedupes it), marks it replayed and audits it, one transaction per
// message. Unknown or not-pending ids are skipped. dryRun changes nothing.
func (s *Service) Replay(ctx context.Context, actor Actor, ids []string, reason string, dryRun bool) ([]Outcome, error) {
	out := make([]Outcome, 0, len(ids))
	for _, id := range ids {
		o, err := s.replayOne(ctx, actor, id, reason, dryRun)
		if err != nil {
			return out, err
		}
		out = append(out, o)
	}
	return out, nil
}

// ReplayAll replays every pending message of topic (see Replay).
func (s *Service) ReplayAll(ctx context.Context, actor Actor, topic, reason string, dryRun bool) ([]Outcome, error) {
	if topic == "" {
		return nil, errors.New("replay all: a topic is required")
	}
	ids, err := s.q.PoisonMessageListIDs(ctx, &store.PoisonMessageListIDsParams{State: StatePending, Topic: topic})
	if err != nil {
		return nil, fmt.Errorf("poison: replay all: %w", err)
	}
	return s.Replay(ctx, actor, ids, reason, dryRun)
}

func (s *Service) replayOne(ctx context.Context, actor Actor, id, reason string, dryRun bool) (Outcome, error) {
	o := Outcome{ID: id}
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		q := store.NewQueries(tx)
		m, pending, err := loadPending(ctx, q.PoisonMessageGet, id, &o)
		if err != nil || !pending {
			return err
		}
		if m.Topic == "" {
			o.Result, o.Detail = ResultSkipped, "the original topic is unknown"
			return nil
		}
		if dryRun {
			o.Result = ResultWouldReplay
			return nil
		}
		moved, err := s.move(ctx, q, id, StateReplayed, actor, reason)
		if err != nil {
			return err
		}
		if !moved {
			o.Result, o.Detail = ResultSkipped, "changed concurrently"
			return nil
		}
		payload, err := m.RawPayload()
		if err != nil {
			return err
		}
		msg := message.NewMessage(m.MessageID, payload)
		for k, v := range m.Metadata {
			msg.Metadata.Set(k, v)
		}
		for _, k := range stripOnReplay {
			delete(msg.Metadata, k)
		}
		if err := s.outbox.Publish(ctx, tx, m.Topic, msg); err != nil {
			return fmt.Errorf("poison: replay %s: %w", id, err)
		}
		if err := s.audit(ctx, q, actor, "poison.replay", id, map[string]any{"topic": m.Topic, "handler": m.Handler, "reason": reason}); err != nil {
			return err
		}
		o.Result = ResultReplayed
		return nil
	})
	return o, err
}

// Discard marks each pending message discarded with reason (required), and
// audits it. Unknown or not-pending ids are skipped.
func (s *Service) Discard(ctx context.Context, actor Actor, ids []string, reason string, dryRun bool) ([]Outcome, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, errors.New("discard: a reason is required")
	}
	out := make([]Outcome, 0, len(ids))
	for _, id := range ids {
		o := Outcome{ID: id}
		err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			q := store.NewQueries(tx)
			m, pending, err := loadPending(ctx, q.PoisonMessageGetHead, id, &o)
			if err != nil || !pending {
				return err
			}
			if dryRun {
				o.Result = ResultWouldDiscard
				return nil
			}
			moved, err := s.move(ctx, q, id, StateDiscarded, actor, reason)
			if err != nil {
				return err
			}
			if !moved {
				o.Result, o.Detail = ResultSkipped, "changed concurrently"
				return nil
			}
			if err := s.audit(ctx, q, actor, "poison.discard", id, map[string]any{"topic": m.Topic, "handler": m.Handler, "reason": reason}); err != nil {
				return err
			}
			o.Result = ResultDiscarded
			return nil
		})
		if err != nil {
			return out, err
		}
		out = append(out, o)
	}
	return out, nil
}

// loadPending loads message id with get (which may leave the payload out)
// and fills o's topic and handler. pending=false means o is already the
// outcome: skipped, as the message does not exist or is not pending.
func loadPending(ctx context.Context, get func(context.Context, string) (*store.PoisonMessage, error), id string, o *Outcome) (m Message, pending bool, err error) {
	row, err := get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		o.Result, o.Detail = ResultSkipped, "no such poisoned message"
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("poison: load %s: %w", id, err)
	}
	m = fromRow(row)
	o.Topic, o.Handler = m.Topic, m.Handler
	if m.State != StatePending {
		o.Result, o.Detail = ResultSkipped, "state is "+m.State
		return m, false, nil
	}
	return m, true, nil
}

// move changes a pending message's state; it reports whether it did.
func (s *Service) move(ctx context.Context, q store.PoisonMessageExecutor, id, state string, actor Actor, reason string) (bool, error) {
	moved, err := q.PoisonMessageMove(ctx, &store.PoisonMessageMoveParams{
		ID: id, From: StatePending, To: state, Reason: reason, By: actor.Type + ":" + actor.ID, At: s.now().UTC(),
	})
	if err != nil {
		return false, fmt.Errorf("poison: %w", err)
	}
	return moved, nil
}

// AuditReveal records that actor saw the unmasked payload of id (or, with
// id "", of an export).
func (s *Service) AuditReveal(ctx context.Context, actor Actor, id string, detail map[string]any) error {
	return s.audit(ctx, s.q, actor, "poison.reveal", id, detail)
}

func (s *Service) audit(ctx context.Context, q store.AuditExecutor, actor Actor, action, id string, detail map[string]any) error {
	return s.auditObject(ctx, q, actor, action, "poison_message", id, detail)
}

func (s *Service) auditObject(ctx context.Context, q store.AuditExecutor, actor Actor, action, objectType, id string, detail map[string]any) error {
	err := q.AuditInsert(ctx, &store.AuditEntry{
		OccurredAt: s.now().UTC(), ActorType: actor.Type, ActorID: actor.ID, Action: action, ObjectType: objectType, ObjectID: id,
		Outcome: "success", SourceIP: actor.IP, UserAgent: actor.UserAgent, Detail: detail,
	})
	if err != nil {
		return fmt.Errorf("poison: audit %s: %w", action, err)
	}
	return nil
}
