package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
)

// PreferencesExecutor holds the statements on doctor_preferences.
type PreferencesExecutor interface {
	PreferencesGet(ctx context.Context, doctorID string) (domain.Preferences, error)
	PreferencesListByDoctors(ctx context.Context, doctorIDs []string) (map[string]domain.Preferences, error)
	PreferencesUpsert(ctx context.Context, row *PreferencesRow) error
	PreferencesInsertIfAbsent(ctx context.Context, row *PreferencesRow) error
}

// PreferencesRow is a row of doctor_preferences: a doctor's notification
// settings as stored.
type PreferencesRow struct {
	bun.BaseModel `bun:"table:doctor_preferences"`

	DoctorID      string                               `bun:"doctor_id,pk"`
	Channels      map[domain.Category][]domain.Channel `bun:"channels,type:json"`
	QuietStart    string                               `bun:"quiet_start"`
	QuietEnd      string                               `bun:"quiet_end"`
	Digest        string                               `bun:"digest"`
	FallbackOrder []domain.Channel                     `bun:"fallback_order,type:json"`
	WeeklySummary bool                                 `bun:"weekly_summary"`
	UpdatedAt     time.Time                            `bun:"updated_at"`
}

// NewPreferencesRow is p, the preferences of doctorID, stored at now.
func NewPreferencesRow(doctorID string, p domain.Preferences, now time.Time) PreferencesRow {
	return PreferencesRow{
		DoctorID:      doctorID,
		Channels:      p.Channels,
		QuietStart:    p.QuietHours.Start,
		QuietEnd:      p.QuietHours.End,
		Digest:        p.Digest,
		FallbackOrder: p.FallbackOrder,
		WeeklySummary: !p.NoWeeklySummary,
		UpdatedAt:     now,
	}
}

// Preferences is the row as the domain's preferences.
func (r PreferencesRow) Preferences() domain.Preferences {
	return domain.Preferences{
		Channels:        r.Channels,
		QuietHours:      domain.QuietHours{Start: r.QuietStart, End: r.QuietEnd},
		Digest:          r.Digest,
		FallbackOrder:   r.FallbackOrder,
		NoWeeklySummary: !r.WeeklySummary,
	}
}

// PreferencesGet is the doctor's stored preferences, or ErrNotFound when
// none are stored (the doctor has the defaults).
func (q *Queries) PreferencesGet(ctx context.Context, doctorID string) (domain.Preferences, error) {
	var row PreferencesRow
	if err := one(q.db.NewSelect().Model(&row).Where("doctor_id = ?", doctorID).Scan(ctx), "load preferences"); err != nil {
		return domain.Preferences{}, err
	}
	return row.Preferences(), nil
}

// PreferencesListByDoctors is the stored preferences of the doctors with
// ids, by doctor id; a doctor with none stored (the defaults) is left out.
func (q *Queries) PreferencesListByDoctors(ctx context.Context, doctorIDs []string) (map[string]domain.Preferences, error) {
	out := make(map[string]domain.Preferences, len(doctorIDs))
	if len(doctorIDs) == 0 {
		return out, nil
	}
	var rows []PreferencesRow
	if err := q.db.NewSelect().Model(&rows).Where("doctor_id IN (?)", bun.List(doctorIDs)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("load preferences: %w", err)
	}
	for _, r := range rows {
		out[r.DoctorID] = r.Preferences()
	}
	return out, nil
}

// PreferencesUpsert stores the doctor's preferences, replacing any.
func (q *Queries) PreferencesUpsert(ctx context.Context, row *PreferencesRow) error {
	if _, err := q.db.NewInsert().Model(row).On("CONFLICT (doctor_id) DO UPDATE").
		Set("channels = EXCLUDED.channels").Set("quiet_start = EXCLUDED.quiet_start").Set("quiet_end = EXCLUDED.quiet_end").
		Set("digest = EXCLUDED.digest").Set("fallback_order = EXCLUDED.fallback_order").Set("weekly_summary = EXCLUDED.weekly_summary").
		Set("updated_at = EXCLUDED.updated_at").
		Exec(ctx); err != nil {
		return fmt.Errorf("store preferences: %w", err)
	}
	return nil
}

// PreferencesInsertIfAbsent stores the doctor's preferences unless some
// are stored already.
func (q *Queries) PreferencesInsertIfAbsent(ctx context.Context, row *PreferencesRow) error {
	if _, err := q.db.NewInsert().Model(row).On("CONFLICT (doctor_id) DO NOTHING").Exec(ctx); err != nil {
		return fmt.Errorf("default preferences: %w", err)
	}
	return nil
}
