package domain

import (
	"sync"
	"time"
)

// Doctor is a referring doctor, registered from user management. It is
// stored as store.Doctor.
type Doctor struct {
	ID              string    `json:"id"`
	ExternalUserID  string    `json:"external_user_id"`
	Name            string    `json:"name"`
	LicenceNumber   string    `json:"licence_number"`
	Specialty       string    `json:"specialty"`
	Clinic          string    `json:"clinic"`
	Email           string    `json:"email"`
	Phone           string    `json:"phone"`
	Locale          string    `json:"locale"`
	TimeZone        string    `json:"time_zone"`
	Active          bool      `json:"active"`
	NotificationSeq int64     `json:"-"`
	ProfileVersion  time.Time `json:"-"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
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
