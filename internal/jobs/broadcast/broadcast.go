// Package broadcast sends an announcement to an audience of doctors (all
// active doctors, a clinic, a specialty, or a list). The API stores the
// broadcast; the worker fans it out into one notification per doctor, in
// chunks of doctors ordered by id. Each chunk is one transaction that makes
// its notifications (through the notifier, so preferences and quiet hours
// apply and the send-notification commands go through the outbox) and moves
// the checkpoint past them. A worker killed half-way loses at most the
// uncommitted chunk and the next one continues from the checkpoint; the
// notifications' dedup keys make a chunk done twice change nothing, so every
// doctor of the audience gets exactly one notification.
package broadcast

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/store"
)

// Audience kinds.
const (
	AudienceAll       = "all"
	AudienceClinic    = "clinic"
	AudienceSpecialty = "specialty"
	AudienceDoctors   = "doctors"
)

// States of a broadcast.
const (
	StatePending = "pending"
	StateRunning = "running"
	StateDone    = "done"
)

// MaxDoctors bounds an explicit audience list.
const MaxDoctors = 10000

// Audience says who receives a broadcast.
type Audience struct {
	Kind string `json:"kind"`
	// Value is the clinic or specialty.
	Value string `json:"value,omitempty"`
	// Doctors are doctor ids or external user ids (kind doctors).
	Doctors []string `json:"doctors,omitempty"`
}

// Validate checks an audience.
func (a Audience) Validate() error {
	switch a.Kind {
	case AudienceAll:
	case AudienceClinic, AudienceSpecialty:
		if strings.TrimSpace(a.Value) == "" {
			return fmt.Errorf("audience.value: required for kind %s", a.Kind)
		}
	case AudienceDoctors:
		if len(a.Doctors) == 0 || len(a.Doctors) > MaxDoctors {
			return fmt.Errorf("audience.doctors: between 1 and %d doctors", MaxDoctors)
		}
	default:
		return fmt.Errorf("audience.kind: want all, clinic, specialty or doctors, got %q", a.Kind)
	}
	return nil
}

// Categories a broadcast may use: critical results and security alerts are
// not for announcements.
var Categories = []domain.Category{domain.CategoryAnnouncements, domain.CategoryResults, domain.CategoryOrders}

// Broadcast is a stored broadcast.
type Broadcast struct {
	bun.BaseModel `bun:"table:broadcasts"`

	ID          string          `bun:"id,pk"`
	Category    domain.Category `bun:"category"`
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

// Audience decodes the stored audience.
func (b Broadcast) Audience() (Audience, error) {
	a := Audience{Kind: b.Kind}
	switch b.Kind {
	case AudienceClinic, AudienceSpecialty:
		if err := json.Unmarshal(b.Value, &a.Value); err != nil {
			return a, fmt.Errorf("broadcast %s: audience: %w", b.ID, err)
		}
	case AudienceDoctors:
		if err := json.Unmarshal(b.Value, &a.Doctors); err != nil {
			return a, fmt.Errorf("broadcast %s: audience: %w", b.ID, err)
		}
	}
	return a, nil
}

// Request is a new broadcast.
type Request struct {
	Category domain.Category
	Title    string
	Body     string
	Audience Audience
	APIKeyID string
}

// InvalidError is a request Create refuses.
type InvalidError struct{ error }

func (e InvalidError) Unwrap() error { return e.error }

// Create stores a broadcast for the worker; it returns its id.
func Create(ctx context.Context, db bun.IDB, r Request, now time.Time) (Broadcast, error) {
	if err := r.Audience.Validate(); err != nil {
		return Broadcast{}, InvalidError{err}
	}
	if r.Category == "" {
		r.Category = domain.CategoryAnnouncements
	}
	if !slices.Contains(Categories, r.Category) {
		return Broadcast{}, InvalidError{fmt.Errorf("category: want announcements, results or orders, got %q", r.Category)}
	}
	var value any = ""
	switch r.Audience.Kind {
	case AudienceClinic, AudienceSpecialty:
		value = r.Audience.Value
	case AudienceDoctors:
		value = r.Audience.Doctors
	}
	raw, err := json.Marshal(value)
	if err != nil {
		return Broadcast{}, fmt.Errorf("broadcast: audience: %w", err)
	}
	b := Broadcast{
		ID: uuid.NewString(), Category: r.Category, Title: r.Title, Body: r.Body, Kind: r.Audience.Kind, Value: raw,
		State: StatePending, APIKeyID: r.APIKeyID, CreatedAt: now.UTC(),
	}
	if _, err := db.NewInsert().Model(&b).Exec(ctx); err != nil {
		return Broadcast{}, fmt.Errorf("broadcast: store: %w", err)
	}
	return b, nil
}

// Progress is how far a broadcast is.
type Progress struct {
	Broadcast
	Delivered int
	Failed    int
}

// ErrNotFound is returned for an unknown broadcast.
var ErrNotFound = errors.New("no such broadcast")

// Get returns a broadcast's progress. Delivered counts the notifications
// delivered on at least one channel; failed those with no delivery left
// to try and none delivered.
func Get(ctx context.Context, db bun.IDB, id string) (Progress, error) {
	var p Progress
	err := db.NewSelect().Model(&p.Broadcast).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("broadcast: get: %w", err)
	}
	if err := db.NewRaw(`SELECT
  COALESCE(SUM(CASE WHEN ok > 0 THEN 1 ELSE 0 END), 0),
  COALESCE(SUM(CASE WHEN ok = 0 AND open = 0 THEN 1 ELSE 0 END), 0)
FROM (SELECT n.id,
        SUM(CASE WHEN d.status IN ('sent', 'delivered', 'read', 'acknowledged') THEN 1 ELSE 0 END) AS ok,
        SUM(CASE WHEN d.status IN ('queued', 'sending') THEN 1 ELSE 0 END) AS open
      FROM notifications n JOIN deliveries d ON d.notification_id = n.id
      WHERE n.source_event_id = ? GROUP BY n.id) per_notification`, sourceID(id)).Scan(ctx, &p.Delivered, &p.Failed); err != nil {
		return p, fmt.Errorf("broadcast: progress: %w", err)
	}
	return p, nil
}

func sourceID(broadcastID string) string { return "broadcast:" + broadcastID }

// Options tune the fan-out.
type Options struct {
	// ChunkSize is how many doctors one transaction notifies.
	ChunkSize int
	// Pause is the throttle: the wait between two chunks.
	Pause time.Duration
}

// FanOut turns stored broadcasts into notifications.
type FanOut struct {
	db       *bun.DB
	notifier *notify.Notifier
	opts     Options
	now      func() time.Time
	logger   *slog.Logger
}

// NewFanOut returns the fan-out.
func NewFanOut(db *bun.DB, n *notify.Notifier, opts Options, now func() time.Time, logger *slog.Logger) *FanOut {
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = 500
	}
	if now == nil {
		now = time.Now
	}
	return &FanOut{db: db, notifier: n, opts: opts, now: now, logger: logger}
}

// Run fans out broadcasts until ctx is done, looking for new ones every poll.
func (f *FanOut) Run(ctx context.Context, poll time.Duration) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			more, err := f.Chunk(ctx)
			if err != nil {
				if ctx.Err() == nil {
					f.logger.ErrorContext(ctx, "broadcast fan-out", "error", err)
				}
				break
			}
			if !more {
				break
			}
			if f.opts.Pause > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(f.opts.Pause):
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Chunk notifies the next chunk of the oldest unfinished broadcast. It
// reports whether there was work.
func (f *FanOut) Chunk(ctx context.Context) (bool, error) {
	worked := false
	err := f.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		lock := ""
		if !store.IsSQLite(f.db) {
			lock = " FOR UPDATE SKIP LOCKED"
		}
		var b Broadcast
		err := tx.NewRaw(`SELECT * FROM broadcasts WHERE state IN (?, ?) ORDER BY created_at, id LIMIT 1`+lock, StatePending, StateRunning).Scan(ctx, &b)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("broadcast: next: %w", err)
		}
		worked = true
		aud, err := b.Audience()
		if err != nil {
			return err
		}
		now := f.now().UTC()
		if b.State == StatePending {
			q := audienceQuery(tx, aud).ColumnExpr("COUNT(*)")
			if err := q.Scan(ctx, &b.Targeted); err != nil {
				return fmt.Errorf("broadcast: count audience: %w", err)
			}
			if _, err := tx.NewRaw(`UPDATE broadcasts SET state = ?, targeted = ?, started_at = ? WHERE id = ?`, StateRunning, b.Targeted, now, b.ID).Exec(ctx); err != nil {
				return fmt.Errorf("broadcast: start: %w", err)
			}
		}
		var docs []domain.Doctor
		if err := audienceQuery(tx, aud).Model(&docs).Where("id > ?", b.Checkpoint).Order("id").Limit(int64(f.opts.ChunkSize)).Scan(ctx); err != nil {
			return fmt.Errorf("broadcast: audience chunk: %w", err)
		}
		in := notify.Intent{
			Key: "broadcast/" + b.ID, SourceEventID: sourceID(b.ID), Type: templates.TypeAnnouncement,
			Category: b.Category, Priority: domain.PriorityNormal,
			Detail: templates.Data{AnnouncementTitle: b.Title, AnnouncementBody: b.Body},
		}
		created := 0
		for _, d := range docs {
			_, ok, err := f.notifier.NotifyDoctor(ctx, tx, in, d, "")
			if err != nil {
				return err
			}
			if ok {
				created++
			}
		}
		if len(docs) < f.opts.ChunkSize {
			_, err := tx.NewRaw(`UPDATE broadcasts SET state = ?, created = created + ?, completed_at = ? WHERE id = ?`, StateDone, created, now, b.ID).Exec(ctx)
			if err == nil {
				f.logger.InfoContext(ctx, "broadcast done", "broadcast", b.ID, "targeted", b.Targeted)
			}
			return err
		}
		_, err = tx.NewRaw(`UPDATE broadcasts SET checkpoint = ?, created = created + ? WHERE id = ?`, docs[len(docs)-1].ID, created, b.ID).Exec(ctx)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("broadcast: chunk: %w", err)
	}
	return worked, nil
}

// audienceQuery selects the audience's active doctors.
func audienceQuery(db bun.IDB, a Audience) *bun.SelectQuery {
	q := db.NewSelect().Model((*domain.Doctor)(nil)).Where("active")
	switch a.Kind {
	case AudienceClinic:
		q = q.Where("clinic = ?", a.Value)
	case AudienceSpecialty:
		q = q.Where("specialty = ?", a.Value)
	case AudienceDoctors:
		q = q.Where("(id IN (?) OR external_user_id IN (?))", bun.List(a.Doctors), bun.List(a.Doctors))
	}
	return q
}
