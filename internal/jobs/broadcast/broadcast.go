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
	ID          string
	Category    domain.Category
	Title       string
	Body        string
	Kind        string
	Value       json.RawMessage
	State       string
	Checkpoint  string
	Targeted    int
	Created     int
	APIKeyID    string
	CreatedAt   time.Time
	StartedAt   *time.Time
	CompletedAt *time.Time
}

func fromRow(r *store.Broadcast) Broadcast {
	return Broadcast{
		ID: r.ID, Category: domain.Category(r.Category), Title: r.Title, Body: r.Body, Kind: r.Kind, Value: r.Value,
		State: r.State, Checkpoint: r.Checkpoint, Targeted: r.Targeted, Created: r.Created, APIKeyID: r.APIKeyID,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, CompletedAt: r.CompletedAt,
	}
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
func Create(ctx context.Context, q store.BroadcastExecutor, r Request, now time.Time) (Broadcast, error) {
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
	row := &store.Broadcast{
		ID: uuid.NewString(), Category: string(r.Category), Title: r.Title, Body: r.Body, Kind: r.Audience.Kind, Value: raw,
		State: StatePending, APIKeyID: r.APIKeyID, CreatedAt: now.UTC(),
	}
	if err := q.BroadcastInsert(ctx, row); err != nil {
		return Broadcast{}, fmt.Errorf("broadcast: store: %w", err)
	}
	return fromRow(row), nil
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
func Get(ctx context.Context, q store.BroadcastExecutor, id string) (Progress, error) {
	var p Progress
	row, err := q.BroadcastGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return p, ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("broadcast: %w", err)
	}
	p.Broadcast = fromRow(row)
	outcomes, err := q.BroadcastCountOutcomes(ctx, sourceID(id))
	if err != nil {
		return p, fmt.Errorf("broadcast: progress: %w", err)
	}
	p.Delivered, p.Failed = outcomes.Delivered, outcomes.Failed
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
		q := store.NewQueries(tx)
		row, err := q.BroadcastGetNextForUpdate(ctx, []string{StatePending, StateRunning})
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("broadcast: next: %w", err)
		}
		b := fromRow(row)
		worked = true
		aud, err := b.Audience()
		if err != nil {
			return err
		}
		now := f.now().UTC()
		if b.State == StatePending {
			if b.Targeted, err = q.BroadcastCountAudience(ctx, audienceOf(aud)); err != nil {
				return fmt.Errorf("broadcast: count audience: %w", err)
			}
			if err := q.BroadcastStart(ctx, &store.BroadcastStartParams{ID: b.ID, State: StateRunning, Targeted: b.Targeted, At: now}); err != nil {
				return fmt.Errorf("broadcast: start: %w", err)
			}
		}
		docs, err := q.BroadcastListAudience(ctx, &store.BroadcastListAudienceParams{Audience: *audienceOf(aud), After: b.Checkpoint, Limit: f.opts.ChunkSize})
		if err != nil {
			return fmt.Errorf("broadcast: audience chunk: %w", err)
		}
		in := notify.Intent{
			Key: "broadcast/" + b.ID, SourceEventID: sourceID(b.ID), Type: templates.TypeAnnouncement,
			Category: b.Category, Priority: domain.PriorityNormal,
			Detail: templates.Data{AnnouncementTitle: b.Title, AnnouncementBody: b.Body},
		}
		created, err := f.notifier.NotifyDoctors(ctx, tx, in, docs)
		if err != nil {
			return err
		}
		if len(docs) < f.opts.ChunkSize {
			err := q.BroadcastFinish(ctx, &store.BroadcastFinishParams{ID: b.ID, State: StateDone, Created: created, At: now})
			if err == nil {
				f.logger.InfoContext(ctx, "broadcast done", "broadcast", b.ID, "targeted", b.Targeted)
			}
			return err
		}
		return q.BroadcastSetCheckpoint(ctx, &store.BroadcastSetCheckpointParams{ID: b.ID, Checkpoint: docs[len(docs)-1].ID, Created: created})
	})
	if err != nil {
		return false, fmt.Errorf("broadcast: chunk: %w", err)
	}
	return worked, nil
}

// audienceOf is the data layer's selection of the audience's doctors.
func audienceOf(a Audience) *store.BroadcastAudience {
	switch a.Kind {
	case AudienceClinic:
		return &store.BroadcastAudience{Clinic: &a.Value}
	case AudienceSpecialty:
		return &store.BroadcastAudience{Specialty: &a.Value}
	case AudienceDoctors:
		doctors := a.Doctors
		if doctors == nil {
			doctors = []string{}
		}
		return &store.BroadcastAudience{Doctors: doctors}
	}
	return &store.BroadcastAudience{}
}
