// Package timeliness reports how fast critical results reach doctors: per
// day, for each critical notification, the intervals from the result event
// to the notification, to its first delivery, to its acknowledgement; the
// share acknowledged within the SLA, and the breaches. It reads only ids
// and times: no patient data.
package timeliness

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/store"
)

// MaxDays bounds one report.
const MaxDays = 92

// Intervals summarises one interval over a day's notifications, in seconds.
type Intervals struct {
	Count  int     `json:"count" doc:"Notifications the interval could be measured on."`
	Median float64 `json:"median_seconds"`
	P90    float64 `json:"p90_seconds"`
	Max    float64 `json:"max_seconds"`
}

// Breach is a critical notification not acknowledged within the SLA.
type Breach struct {
	NotificationID string     `json:"notification_id"`
	DoctorID       string     `json:"doctor_id"`
	NotifiedAt     time.Time  `json:"notified_at"`
	AcknowledgedAt *time.Time `json:"acknowledged_at,omitempty"`
	// EscalationLevel is the highest step of the escalation ladder taken.
	EscalationLevel int `json:"escalation_level"`
}

// Day is one day (UTC) of the report.
type Day struct {
	Date              string    `json:"date" example:"2026-11-24"`
	Critical          int       `json:"critical" doc:"Critical-result notifications made that day (doctors' own, not covering copies)."`
	EventToNotified   Intervals `json:"event_to_notified"`
	NotifiedToDeliver Intervals `json:"notified_to_delivered"`
	DeliveredToAck    Intervals `json:"delivered_to_acknowledged"`
	WithinSLA         int       `json:"within_sla" doc:"Acknowledged within the SLA of being notified."`
	ShareWithinSLA    float64   `json:"share_within_sla" doc:"within_sla / critical; 1 on a day without critical results."`
	Breaches          []Breach  `json:"breaches"`
}

// Report is the report over a range of days.
type Report struct {
	From       string  `json:"from"`
	To         string  `json:"to"`
	SLASeconds float64 `json:"sla_seconds"`
	Days       []Day   `json:"days"`
}

// Build computes the report for the days from..to (inclusive, UTC dates).
// A notification still unacknowledged is a breach once the SLA has passed
// at now.
func Build(ctx context.Context, q store.ReportExecutor, from, to time.Time, sla time.Duration, now time.Time) (Report, error) {
	from = day(from)
	to = day(to)
	if to.Before(from) {
		return Report{}, fmt.Errorf("to is before from")
	}
	if days := int(to.Sub(from).Hours()/24) + 1; days > MaxDays {
		return Report{}, fmt.Errorf("at most %d days per report, asked for %d", MaxDays, days)
	}
	rows, err := q.ReportListTimeliness(ctx, &store.ReportListTimelinessParams{
		Priority: string(domain.PriorityCritical), From: from, To: to.Add(24 * time.Hour),
	})
	if err != nil {
		return Report{}, fmt.Errorf("timeliness: %w", err)
	}
	rep := Report{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), SLASeconds: sla.Seconds()}
	byDay := map[string]*Day{}
	for d := from; !d.After(to); d = d.Add(24 * time.Hour) {
		rep.Days = append(rep.Days, Day{Date: d.Format(time.DateOnly), Breaches: []Breach{}})
	}
	for i := range rep.Days {
		byDay[rep.Days[i].Date] = &rep.Days[i]
	}
	type samples struct{ e2n, n2d, d2a []float64 }
	acc := map[string]*samples{}
	for _, r := range rows {
		key := r.CreatedAt.UTC().Format(time.DateOnly)
		d := byDay[key]
		if d == nil {
			continue
		}
		s := acc[key]
		if s == nil {
			s = &samples{}
			acc[key] = s
		}
		d.Critical++
		notified := r.CreatedAt.UTC()
		if r.EventAt != nil {
			s.e2n = append(s.e2n, notified.Sub(r.EventAt.UTC()).Seconds())
		}
		if r.DeliveredAt != nil {
			s.n2d = append(s.n2d, r.DeliveredAt.UTC().Sub(notified).Seconds())
			if r.AcknowledgedAt != nil {
				s.d2a = append(s.d2a, r.AcknowledgedAt.UTC().Sub(r.DeliveredAt.UTC()).Seconds())
			}
		}
		deadline := notified.Add(sla)
		switch {
		case r.AcknowledgedAt != nil && !r.AcknowledgedAt.After(deadline):
			d.WithinSLA++
		case r.AcknowledgedAt != nil || now.After(deadline):
			b := Breach{NotificationID: r.ID, DoctorID: r.DoctorID, NotifiedAt: notified, AcknowledgedAt: r.AcknowledgedAt}
			if r.Level != nil {
				b.EscalationLevel = *r.Level
			}
			d.Breaches = append(d.Breaches, b)
		}
	}
	for i := range rep.Days {
		d := &rep.Days[i]
		d.ShareWithinSLA = 1
		if d.Critical > 0 {
			d.ShareWithinSLA = float64(d.WithinSLA) / float64(d.Critical)
		}
		if s := acc[d.Date]; s != nil {
			d.EventToNotified, d.NotifiedToDeliver, d.DeliveredToAck = summarise(s.e2n), summarise(s.n2d), summarise(s.d2a)
		}
	}
	return rep, nil
}

func day(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func summarise(xs []float64) Intervals {
	if len(xs) == 0 {
		return Intervals{}
	}
	sort.Float64s(xs)
	return Intervals{Count: len(xs), Median: quantile(xs, 0.5), P90: quantile(xs, 0.9), Max: xs[len(xs)-1]}
}

// quantile is the nearest-rank quantile of sorted xs.
func quantile(xs []float64, q float64) float64 {
	i := int(float64(len(xs))*q+0.999999) - 1
	return xs[max(0, min(i, len(xs)-1))]
}
