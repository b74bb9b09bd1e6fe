// Package domain holds the vocabulary of RFD Notify: notification
// categories, channels and priorities, and a doctor's preferences with the
// rules that cannot be switched off.
package domain

import (
	"fmt"
	"slices"
	"time"
)

// Category groups notifications for preferences.
type Category string

// Categories.
const (
	CategoryResults         Category = "results"
	CategoryCriticalResults Category = "critical_results"
	CategoryOrders          Category = "orders"
	CategorySecurity        Category = "security"
	CategoryAnnouncements   Category = "announcements"
)

// Categories lists every category.
var Categories = []Category{CategoryResults, CategoryCriticalResults, CategoryOrders, CategorySecurity, CategoryAnnouncements}

// Channel is a way of reaching a doctor.
type Channel string

// Channels.
const (
	ChannelInApp   Channel = "in_app"
	ChannelEmail   Channel = "email"
	ChannelSMS     Channel = "sms"
	ChannelPush    Channel = "push"
	ChannelWebhook Channel = "webhook"
)

// Channels lists every channel.
var Channels = []Channel{ChannelInApp, ChannelEmail, ChannelSMS, ChannelPush, ChannelWebhook}

// Priority of a notification.
type Priority string

// Priorities.
const (
	PriorityNormal   Priority = "normal"
	PriorityHigh     Priority = "high"
	PriorityCritical Priority = "critical"
)

// Notification states: a corrected result supersedes the notifications of
// the earlier version; a cancelled or entered-in-error result retracts them.
// Neither is deleted: the portal shows them as superseded or retracted.
const (
	StateActive     = "active"
	StateSuperseded = "superseded"
	StateRetracted  = "retracted"
)

// Delivery statuses.
const (
	DeliveryQueued      = "queued"
	DeliverySending     = "sending"
	DeliverySent        = "sent"
	DeliveryDelivered   = "delivered"
	DeliveryFailed      = "failed"
	DeliveryUndelivered = "undelivered"
	DeliverySuppressed  = "suppressed"
)

// Covering statuses. A doctor's request that a colleague cover for them is
// pending until the colleague (or an operator) accepts it; only an
// accepted cover sends the colleague copies of the doctor's notifications.
const (
	CoverPending  = "pending"
	CoverAccepted = "accepted"
	CoverDeclined = "declined"
)

// Mandatory reports the channels a category always uses, whatever the
// doctor chose: a critical result or a security alert must at least reach
// the portal.
func Mandatory(c Category) []Channel {
	switch c {
	case CategoryCriticalResults, CategorySecurity:
		return []Channel{ChannelInApp}
	}
	return nil
}

// BypassesQuietHours reports whether a category is delivered at once even in
// the doctor's quiet hours.
func BypassesQuietHours(c Category) bool {
	return c == CategoryCriticalResults || c == CategorySecurity
}

// QuietHours is a daily window, in the doctor's time zone, in which
// non-urgent notifications wait. Start and End are "HH:MM"; a window may
// cross midnight (22:00–07:00). Empty means no quiet hours.
type QuietHours struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// Preferences are a doctor's notification settings.
type Preferences struct {
	// Channels maps each category to the channels it goes out on.
	Channels map[Category][]Channel `json:"channels"`
	// QuietHours, if set, defers non-urgent notifications.
	QuietHours QuietHours `json:"quiet_hours"`
	// Digest is "off", "hourly" or "daily@HH:MM".
	Digest string `json:"digest"`
	// FallbackOrder is the channel order tried when a critical notification
	// could not be delivered on a channel.
	FallbackOrder []Channel `json:"fallback_order"`
	// NoWeeklySummary opts the doctor out of the weekly summary email.
	NoWeeklySummary bool `json:"no_weekly_summary,omitempty"`
}

// DefaultPreferences are a new doctor's settings.
func DefaultPreferences() Preferences {
	return Preferences{
		Channels: map[Category][]Channel{
			CategoryResults:         {ChannelInApp, ChannelEmail},
			CategoryCriticalResults: {ChannelInApp, ChannelSMS, ChannelPush, ChannelEmail},
			CategoryOrders:          {ChannelInApp},
			CategorySecurity:        {ChannelInApp, ChannelEmail},
			CategoryAnnouncements:   {ChannelInApp},
		},
		Digest:        "off",
		FallbackOrder: []Channel{ChannelSMS, ChannelPush, ChannelEmail},
	}
}

// ChannelsFor returns the channels notifications of category c go out on:
// the chosen ones plus the mandatory ones, in the order of Channels.
func (p Preferences) ChannelsFor(c Category) []Channel {
	chosen := p.Channels[c]
	out := make([]Channel, 0, len(Channels))
	for _, ch := range Channels {
		if slices.Contains(chosen, ch) || slices.Contains(Mandatory(c), ch) {
			out = append(out, ch)
		}
	}
	return out
}

// Validate checks the values a doctor or an API client may set.
func (p Preferences) Validate() error {
	for c, chs := range p.Channels {
		if !slices.Contains(Categories, c) {
			return fmt.Errorf("channels: unknown category %q", c)
		}
		for _, ch := range chs {
			if !slices.Contains(Channels, ch) {
				return fmt.Errorf("channels.%s: unknown channel %q", c, ch)
			}
		}
	}
	for _, ch := range p.FallbackOrder {
		if !slices.Contains(Channels, ch) {
			return fmt.Errorf("fallback_order: unknown channel %q", ch)
		}
	}
	if (p.QuietHours.Start == "") != (p.QuietHours.End == "") {
		return fmt.Errorf("quiet_hours: start and end must both be set or both be empty")
	}
	if p.QuietHours.Start != "" {
		if _, err := parseClock(p.QuietHours.Start); err != nil {
			return fmt.Errorf("quiet_hours.start: %w", err)
		}
		if _, err := parseClock(p.QuietHours.End); err != nil {
			return fmt.Errorf("quiet_hours.end: %w", err)
		}
	}
	return nil
}

func parseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("want HH:MM, got %q", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Defer returns when a non-urgent notification created at now may go out:
// now itself outside the quiet window, else the end of the window. The
// window is read in loc, the doctor's time zone.
func (q QuietHours) Defer(now time.Time, loc *time.Location) time.Time {
	if q.Start == "" || q.End == "" {
		return now
	}
	start, err1 := parseClock(q.Start)
	end, err2 := parseClock(q.End)
	if err1 != nil || err2 != nil || start == end {
		return now
	}
	local := now.In(loc)
	midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	sinceMidnight := local.Sub(midnight)
	if start < end {
		// Same-day window, e.g. 12:00–14:00.
		if sinceMidnight >= start && sinceMidnight < end {
			return wallClock(midnight, end, loc)
		}
		return now
	}
	// Window across midnight, e.g. 22:00–07:00.
	switch {
	case sinceMidnight >= start:
		return wallClock(midnight.AddDate(0, 0, 1), end, loc)
	case sinceMidnight < end:
		return wallClock(midnight, end, loc)
	}
	return now
}

// wallClock is day's local midnight plus the clock offset, computed on the
// wall clock so daylight-saving days land on the intended local time.
func wallClock(day time.Time, offset time.Duration, loc *time.Location) time.Time {
	h := int(offset / time.Hour)
	m := int((offset % time.Hour) / time.Minute)
	return time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, loc).UTC()
}
