// Package escalation is the critical-result escalation ladder: a critical
// notification nobody has acknowledged within the SLA is re-sent over the
// next channel of the doctor's fallback order, then to the doctor covering
// for them, then to the configured on-call doctor, one step per SLA
// interval. Acknowledging the notification (or any copy the ladder made)
// stops it: no step is taken after the acknowledgement commits. The ladder's
// timers are rows (escalations.next_at), so they survive restarts, and every
// step is recorded (escalation_steps: level, time, kind, channel, doctor).
package escalation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/delivery"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/outbox"
)

// Escalation states.
const (
	StateActive    = "active"
	StateStopped   = "stopped"   // acknowledged, or the notification was withdrawn
	StateExhausted = "exhausted" // no step left to take
)

// Step kinds, in ladder order.
const (
	KindChannel  = "channel"
	KindCovering = "covering"
	KindOnCall   = "oncall"
)

// Options configure the ladder.
type Options struct {
	// SLA is how long a critical notification may stay unacknowledged
	// before the first step, and between steps.
	SLA time.Duration
	// OnCallDoctor is the external user id of the on-call contact (a doctor
	// account); empty leaves the on-call step out.
	OnCallDoctor string
	// SendTopic is the send-notification topic.
	SendTopic string
	// Lookback bounds how old a notification may be to start escalating,
	// so enabling the ladder does not escalate history. Zero is 7 days.
	Lookback time.Duration
}

// Ladder takes the due steps.
type Ladder struct {
	db       *bun.DB
	notifier *notify.Notifier
	outbox   *outbox.Publisher
	opts     Options
	now      func() time.Time
	breached *prometheus.CounterVec
}

// New returns the ladder; its counter rfd_escalations_sla_breached_total
// {level} is registered in reg.
func New(db *bun.DB, n *notify.Notifier, ob *outbox.Publisher, opts Options, now func() time.Time, reg prometheus.Registerer) (*Ladder, error) {
	if opts.SLA <= 0 {
		return nil, errors.New("escalation: the SLA must be positive")
	}
	if opts.Lookback <= 0 {
		opts.Lookback = 7 * 24 * time.Hour
	}
	if now == nil {
		now = time.Now
	}
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "rfd", Name: "escalations_sla_breached_total",
		Help: "Escalation steps taken because a critical result stayed unacknowledged past the SLA, by ladder level.",
	}, []string{"level"})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("escalation metrics: %w", err)
			}
			c = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	// Level 1, the first step, is always exported, at 0 until a ladder
	// starts: an alert on its increase needs the series to exist.
	c.WithLabelValues("1")
	return &Ladder{db: db, notifier: n, outbox: ob, opts: opts, now: now, breached: c}, nil
}

// batch is how many escalations one transaction round looks at.
const batch = 100

// Run is the cron job: it starts the ladder of every critical notification
// past its SLA and takes every due step. It returns the steps taken.
func (l *Ladder) Run(ctx context.Context, _ time.Time) error {
	_, err := l.Tick(ctx)
	return err
}

// Tick starts due ladders and takes due steps; it returns the steps taken.
func (l *Ladder) Tick(ctx context.Context) (int, error) {
	if err := l.seed(ctx); err != nil {
		return 0, err
	}
	steps := 0
	for {
		due, err := store.NewQueries(l.db).EscalationListDue(ctx, &store.EscalationListDueParams{State: StateActive, Now: l.now().UTC(), Limit: batch})
		if err != nil {
			return steps, fmt.Errorf("escalation: %w", err)
		}
		for _, id := range due {
			took, err := l.step(ctx, id)
			if err != nil {
				return steps, err
			}
			if took {
				steps++
			}
		}
		if len(due) < batch {
			return steps, nil
		}
	}
}

// seed starts a ladder, due at once, for each critical notification older
// than the SLA that has none, is unacknowledged and is the doctor's own
// (copies made for covering doctors do not escalate by themselves).
func (l *Ladder) seed(ctx context.Context) error {
	now := l.now().UTC()
	q := store.NewQueries(l.db)
	ids, err := q.EscalationListBreaches(ctx, &store.EscalationListBreachesParams{
		Priority: string(domain.PriorityCritical), State: string(domain.StateActive),
		CreatedBefore: now.Add(-l.opts.SLA), CreatedAfter: now.Add(-l.opts.Lookback),
	})
	if err != nil {
		return fmt.Errorf("escalation: find breaches: %w", err)
	}
	for _, n := range ids {
		if err := q.EscalationStart(ctx, &store.EscalationStartParams{
			NotificationID: n.ID, State: StateActive, NextAt: n.CreatedAt.UTC().Add(l.opts.SLA), At: now,
		}); err != nil {
			return fmt.Errorf("escalation: %w", err)
		}
	}
	return nil
}

// step takes the next step of one ladder, in one transaction with the
// notifications and deliveries it makes.
func (l *Ladder) step(ctx context.Context, id string) (bool, error) {
	took := false
	level := 0
	err := l.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		now := l.now().UTC()
		q := store.NewQueries(tx)
		e, err := q.EscalationGetForUpdate(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil // another replica holds it
		}
		if err != nil {
			return fmt.Errorf("escalation: load ladder: %w", err)
		}
		if e.State != StateActive || e.NextAt.After(now) {
			return nil
		}
		nt, err := q.NotificationGet(ctx, id)
		if err != nil {
			return fmt.Errorf("escalation: load notification: %w", err)
		}
		n := *nt
		acked, err := Acknowledged(ctx, q, n)
		if err != nil {
			return err
		}
		if acked || n.State != domain.StateActive {
			return setState(ctx, q, id, StateStopped, now)
		}
		done, err := q.EscalationStepListKinds(ctx, id)
		if err != nil {
			return fmt.Errorf("escalation: steps taken: %w", err)
		}
		level = e.Level + 1
		for _, kind := range []string{KindChannel, KindCovering, KindOnCall} {
			if slices.Contains(done, kind) {
				continue
			}
			st, ok, err := l.take(ctx, tx, kind, n, now)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if err := q.EscalationStepInsert(ctx, &store.EscalationStep{
				NotificationID: id, Level: level, Kind: kind, Channel: st.channel, DoctorID: st.doctorID,
				EscalatedNotificationID: st.notificationID, At: now,
			}); err != nil {
				return fmt.Errorf("escalation: record step: %w", err)
			}
			if err := q.EscalationAdvance(ctx, &store.EscalationAdvanceParams{NotificationID: id, Level: level, NextAt: now.Add(l.opts.SLA), At: now}); err != nil {
				return fmt.Errorf("escalation: next step: %w", err)
			}
			took = true
			return nil
		}
		return setState(ctx, q, id, StateExhausted, now)
	})
	if err != nil {
		return false, err
	}
	if took {
		l.breached.WithLabelValues(strconv.Itoa(level)).Inc()
	}
	return took, nil
}

func setState(ctx context.Context, q store.EscalationExecutor, id, state string, now time.Time) error {
	if err := q.EscalationSetState(ctx, &store.EscalationSetStateParams{NotificationID: id, State: state, At: now}); err != nil {
		return fmt.Errorf("escalation: %w", err)
	}
	return nil
}

// Acknowledged reports whether n, or a copy the ladder made of it, has been
// acknowledged.
func Acknowledged(ctx context.Context, q store.EscalationExecutor, n store.Notification) (bool, error) {
	if n.AcknowledgedAt != nil {
		return true, nil
	}
	k, err := q.EscalationCountAcknowledgedCopies(ctx, copyKey(n.ID)+"|")
	if err != nil {
		return false, fmt.Errorf("escalation: %w", err)
	}
	return k > 0, nil
}

// copyKey is the intent key of the copies the ladder makes of a notification.
func copyKey(notificationID string) string { return "escalation/" + notificationID }

type stepTaken struct {
	channel        string
	doctorID       string
	notificationID string
}

// take tries one kind of step; ok=false means it has nothing to do (no
// untried channel, nobody covering, no on-call configured).
func (l *Ladder) take(ctx context.Context, tx bun.Tx, kind string, n store.Notification, now time.Time) (stepTaken, bool, error) {
	switch kind {
	case KindChannel:
		ch, err := nextChannel(ctx, tx, n)
		if err != nil || ch == "" {
			return stepTaken{}, false, err
		}
		queued, err := delivery.Fallback(ctx, tx, l.outbox, l.opts.SendTopic, n.ID, "escalation: unacknowledged past the SLA", now)
		if err != nil || !queued {
			return stepTaken{}, false, err
		}
		return stepTaken{channel: string(ch), doctorID: n.DoctorID}, true, nil
	case KindCovering:
		covering, err := notify.CoveringDoctors(ctx, tx, n.DoctorID, now)
		if err != nil || len(covering) == 0 {
			return stepTaken{}, false, err
		}
		return l.copyTo(ctx, tx, n, covering[0])
	case KindOnCall:
		if l.opts.OnCallDoctor == "" {
			return stepTaken{}, false, nil
		}
		doc, found, err := notify.DoctorByExternalID(ctx, tx, l.opts.OnCallDoctor)
		if err != nil || !found || !doc.Active || doc.ID == n.DoctorID {
			return stepTaken{}, false, err
		}
		return l.copyTo(ctx, tx, n, doc)
	}
	return stepTaken{}, false, fmt.Errorf("escalation: unknown step %q", kind)
}

// nextChannel is the channel delivery.Fallback would queue next, or "".
func nextChannel(ctx context.Context, tx bun.Tx, n store.Notification) (domain.Channel, error) {
	prefs, err := notify.PreferencesOf(ctx, tx, n.DoctorID)
	if err != nil {
		return "", err
	}
	tried, err := store.NewQueries(tx).EscalationListTriedChannels(ctx, n.ID)
	if err != nil {
		return "", fmt.Errorf("escalation: %w", err)
	}
	for _, ch := range prefs.FallbackOrder {
		if !slices.Contains(tried, string(ch)) {
			return ch, nil
		}
	}
	return "", nil
}

// copyTo makes the escalated copy of n for doc, on behalf of n's doctor.
func (l *Ladder) copyTo(ctx context.Context, tx bun.Tx, n store.Notification, doc domain.Doctor) (stepTaken, bool, error) {
	var detail templates.Data
	raw, err := json.Marshal(n.Data)
	if err != nil {
		return stepTaken{}, false, fmt.Errorf("escalation: detail: %w", err)
	}
	if err := json.Unmarshal(raw, &detail); err != nil {
		return stepTaken{}, false, fmt.Errorf("escalation: detail: %w", err)
	}
	in := notify.Intent{
		Key: copyKey(n.ID), SourceEventID: n.SourceEventID, Type: n.Type, Category: n.Category, Priority: n.Priority,
		Detail: detail, ExpiresAt: n.ExpiresAt,
	}
	if n.CheckupID != nil {
		in.CheckupID = *n.CheckupID
	}
	if n.OrderID != nil {
		in.OrderID = *n.OrderID
	}
	if n.ResultVersion != nil {
		in.ResultVersion = *n.ResultVersion
	}
	id, _, err := l.notifier.NotifyDoctor(ctx, tx, in, doc, n.DoctorID)
	if err != nil {
		return stepTaken{}, false, err
	}
	return stepTaken{doctorID: doc.ID, notificationID: id}, true, nil
}

// Step is one recorded step of a notification's ladder.
type Step struct {
	Level                   int       `json:"level"`
	Kind                    string    `json:"kind"`
	Channel                 string    `json:"channel,omitempty"`
	DoctorID                string    `json:"doctor_id"`
	EscalatedNotificationID string    `json:"escalated_notification_id,omitempty"`
	At                      time.Time `json:"at"`
}

// Steps lists the steps taken for a notification, in order.
func Steps(ctx context.Context, q store.EscalationExecutor, notificationID string) ([]Step, error) {
	rows, err := q.EscalationStepList(ctx, notificationID)
	if err != nil {
		return nil, fmt.Errorf("escalation: %w", err)
	}
	var out []Step
	for _, r := range rows {
		out = append(out, Step{Level: r.Level, Kind: r.Kind, Channel: r.Channel, DoctorID: r.DoctorID,
			EscalatedNotificationID: r.EscalatedNotificationID, At: r.At})
	}
	return out, nil
}
