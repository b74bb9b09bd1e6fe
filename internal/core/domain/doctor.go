package domain

import (
	"sync"
	"time"

	"github.com/uptrace/bun"
)

// Doctor is a referring doctor, registered from user management.
type Doctor struct {
	bun.BaseModel `bun:"table:doctors"`

	ID              string    `bun:"id,pk" json:"id"`
	ExternalUserID  string    `bun:"external_user_id" json:"external_user_id"`
	Name            string    `bun:"name" json:"name"`
	LicenceNumber   string    `bun:"licence_number" json:"licence_number"`
	Specialty       string    `bun:"specialty" json:"specialty"`
	Clinic          string    `bun:"clinic" json:"clinic"`
	Email           string    `bun:"email" json:"email"`
	Phone           string    `bun:"phone" json:"phone"`
	Locale          string    `bun:"locale" json:"locale"`
	TimeZone        string    `bun:"time_zone" json:"time_zone"`
	Active          bool      `bun:"active" json:"active"`
	NotificationSeq int64     `bun:"notification_seq" json:"-"`
	ProfileVersion  time.Time `bun:"profile_version" json:"-"`
	CreatedAt       time.Time `bun:"created_at" json:"created_at"`
	UpdatedAt       time.Time `bun:"updated_at" json:"updated_at"`
}

// Location is the doctor's time zone, UTC if it does not load.
func (d Doctor) Location() *time.Location {
	if loc, ok := locations.Load(d.TimeZone); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(d.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	locations.Store(d.TimeZone, loc)
	return loc
}

// locations caches loaded time zones: time.LoadLocation reads the zone
// database from disk on every call, and every notification needs one.
var locations sync.Map

// PreferencesRow is how preferences are stored.
type PreferencesRow struct {
	bun.BaseModel `bun:"table:doctor_preferences"`

	DoctorID      string                 `bun:"doctor_id,pk"`
	Channels      map[Category][]Channel `bun:"channels,type:json"`
	QuietStart    string                 `bun:"quiet_start"`
	QuietEnd      string                 `bun:"quiet_end"`
	Digest        string                 `bun:"digest"`
	FallbackOrder []Channel              `bun:"fallback_order,type:json"`
	WeeklySummary bool                   `bun:"weekly_summary"`
	UpdatedAt     time.Time              `bun:"updated_at"`
}

// Preferences converts the row.
func (r PreferencesRow) Preferences() Preferences {
	return Preferences{
		Channels:        r.Channels,
		QuietHours:      QuietHours{Start: r.QuietStart, End: r.QuietEnd},
		Digest:          r.Digest,
		FallbackOrder:   r.FallbackOrder,
		NoWeeklySummary: !r.WeeklySummary,
	}
}

// Row converts preferences for storage.
func (p Preferences) Row(doctorID string, now time.Time) PreferencesRow {
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
