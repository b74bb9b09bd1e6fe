package main

import (
	"fmt"
	"strings"
)

// Issue 19's targets ("Performance, retargeted").
const (
	targetSameWorkRatio    = 2.0   // 1: checkup-events service / same-work pipeline, at least
	targetCPUPerEvent      = 500.0 // 1: µs of Go + PostgreSQL CPU per checkup event, at most
	targetDeliveriesFast   = 1500.0
	targetDeliveriesEmail  = 500.0
	targetServeP99Millis   = 20.0 // 4: rfd serve, event -> in-app notification, at most
	targetAPIListP99Ratio  = 1.3  // 5: GET /v1/notifications p99 / bare pgx handler, at most
	targetCheckupP99Millis = 50.0 // 1: event -> in-app notification at half the maximum rate, below
)

// Phases run after the checkup-events sides; one that fails leaves its
// targets unmeasured.
const (
	phaseBroadcast    = "broadcast"
	phaseDeliveries   = "deliveries"
	phaseAPIList      = "api_list"
	phaseServeLatency = "serve_latency"
)

// Target is one of issue 19's targets as this run measured it.
type Target struct {
	// Number is the target's number in the issue.
	Number int    `json:"number"`
	Name   string `json:"name"`
	// Measured is false when the run skipped the phase that measures it;
	// Figure and Met are then meaningless.
	Measured bool    `json:"measured"`
	Figure   float64 `json:"figure"`
	Unit     string  `json:"unit"`
	// Bound is the target's limit; Op says which side of it meets it
	// (">=", "<=" or "<"), "" for a figure printed with no bound.
	Bound  float64 `json:"bound"`
	Op     string  `json:"op"`
	Met    bool    `json:"met"`
	Detail string  `json:"detail,omitempty"`
	// Skipped says which flag skipped it.
	Skipped string `json:"skipped,omitempty"`
}

func (t Target) line() string {
	head := fmt.Sprintf("target %d %s: ", t.Number, t.Name)
	if !t.Measured {
		return head + "not measured (" + t.Skipped + ")"
	}
	unit := t.Unit
	if unit != "x" && unit != "/s" {
		unit = " " + unit
	}
	s := fmt.Sprintf("%s%s%s (target %s %s%s) %s", head, num(t.Figure), unit, t.Op, num(t.Bound), unit, met(t.Met))
	if t.Op == "" {
		s = fmt.Sprintf("%s%s%s (printed, no bound)", head, num(t.Figure), unit)
	}
	if t.Detail != "" {
		s += "; " + t.Detail
	}
	return s
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func measured(n int, name string, figure float64, unit, op string, bound float64, detail string) Target {
	ok := false
	switch op {
	case ">=":
		ok = figure >= bound
	case "<=":
		ok = figure <= bound
	case "<":
		ok = figure < bound
	}
	return Target{Number: n, Name: name, Measured: true, Figure: figure, Unit: unit, Bound: bound, Op: op, Met: ok, Detail: detail}
}

func skipped(n int, name, unit, op string, bound float64, why string) Target {
	return Target{Number: n, Name: name, Unit: unit, Op: op, Bound: bound, Skipped: why}
}

// issueTargets lists every target of issue 19 with this run's figure.
func issueTargets(r Results, o options) []Target {
	// why is the reason a phase's target was not measured.
	why := func(phase, flag string) string {
		if e, ok := r.Errors[phase]; ok {
			first, _, _ := strings.Cut(e, "\n")
			return "failed: " + first
		}
		return flag
	}
	var ts []Target
	if pk := r.PostgresKafka; pk != nil && pk.SameWork != nil {
		ts = append(ts, measured(1, "checkup-events service/same-work on postgres+kafka", pk.SameWorkRatio, "x", ">=", targetSameWorkRatio,
			fmt.Sprintf("service %.0f events/s, same-work %.0f events/s; 4-row baseline %.0f events/s (ratio %.3f, a direction, not a gate)",
				pk.Service.EventsPerSecond, pk.SameWork.EventsPerSecond, pk.Baseline.EventsPerSecond, pk.Ratio)))
		sv := pk.Service
		ts = append(ts, measured(1, "checkup-events CPU per event (Go + PostgreSQL) on postgres+kafka", sv.CPUGoMicros+sv.CPUPostgresMicros, "µs", "<=", targetCPUPerEvent,
			fmt.Sprintf("consumer and worker %.0f µs + PostgreSQL %.0f µs, over the maximum-rate run; kfake and the harness's polls %.0f µs more; same-work pipeline %.0f µs (Go and kfake) + %.0f µs",
				sv.CPUGoMicros, sv.CPUPostgresMicros, sv.CPUHarnessMicros, pk.SameWork.CPUGoMicros, pk.SameWork.CPUPostgresMicros)))
		ts = append(ts, measured(1, "checkup-events event -> in-app notification p99 at half the maximum rate on postgres+kafka", sv.P99Millis, "ms", "<", targetCheckupP99Millis,
			fmt.Sprintf("p50 %.1f ms at %.0f events/s", sv.P50Millis, sv.LatencyRate)))
	} else {
		no := "-combinations without " + comboPostgresKafka
		ts = append(ts, skipped(1, "checkup-events service/same-work on postgres+kafka", "x", ">=", targetSameWorkRatio, no),
			skipped(1, "checkup-events CPU per event (Go + PostgreSQL) on postgres+kafka", "µs", "<=", targetCPUPerEvent, no),
			skipped(1, "checkup-events event -> in-app notification p99 at half the maximum rate on postgres+kafka", "ms", "<", targetCheckupP99Millis, no))
	}

	for _, ch := range targetChannels {
		bound := targetDeliveriesFast
		if ch == "email" {
			bound = targetDeliveriesEmail
		}
		name := "deliveries " + ch + " on postgres+kafka"
		if d := r.Deliveries; d != nil {
			ts = append(ts, measured(2, name, d.Rate[ch], "/s", ">=", bound, fmt.Sprintf("%d deliveries; per delivery: %s", d.PerChannel, d.Detail[ch])))
		} else {
			ts = append(ts, skipped(2, name, "/s", ">=", bound, why(phaseDeliveries, "-deliveries 0")))
		}
	}

	name := fmt.Sprintf("broadcast to %d doctors (in-app) fully delivered", o.broadcastDoctors)
	if b := r.Broadcast; b != nil {
		t := measured(3, name, b.Delivered, "s", "<=", b.TargetSeconds, fmt.Sprintf("fan-out done at %.1f s, deliveries at %.1f s", b.FanOutDone, b.Delivered))
		if b.Doctors != 100000 {
			t.Detail += fmt.Sprintf(" (the target is for 100000 doctors; %d measured)", b.Doctors)
		}
		ts = append(ts, t)
	} else {
		ts = append(ts, skipped(3, "broadcast to 100000 doctors (in-app) fully delivered", "s", "<=", targetBroadcast.Seconds(), why(phaseBroadcast, "-broadcast-doctors 0")))
	}

	name = "rfd serve event -> in-app notification committed p99"
	if s := r.ServeLatency; s != nil {
		ts = append(ts, measured(4, name, s.CreatedP99, "ms", "<=", targetServeP99Millis,
			fmt.Sprintf("p50 %.1f ms over %d events; to the doctor's stream p50 %.1f ms p99 %.1f ms", s.CreatedP50, s.Events, s.StreamP50, s.StreamP99)))
	} else {
		ts = append(ts, skipped(4, name, "ms", "<=", targetServeP99Millis, why(phaseServeLatency, "-serve-events 0")))
	}

	name = "sqlite+sql checkup-events service/baseline"
	if sq := r.SQLiteSQL; sq != nil {
		ts = append(ts, Target{Number: 4, Name: name, Measured: true, Figure: sq.Ratio, Unit: "x",
			Detail: fmt.Sprintf("service %.0f events/s beside its baseline %.0f events/s", sq.Service.EventsPerSecond, sq.Baseline.EventsPerSecond)})
	} else {
		ts = append(ts, Target{Number: 4, Name: name, Unit: "x", Skipped: "-combinations without " + comboSQLite})
	}

	name = "GET /v1/notifications p99 / bare pgx handler (first page)"
	if a := r.APIList; a != nil {
		t := measured(5, name, a.RatioFirst, "x", "<=", targetAPIListP99Ratio,
			fmt.Sprintf("deep page %.2fx; service p99 first %.2f ms, deep %.2f ms; %d requests per scenario and side",
				a.RatioDeep, a.P99Millis["service first"], a.P99Millis["service deep"], a.Requests))
		if a.Notifications > 0 {
			t.Detail += fmt.Sprintf(" on %d notifications (the benchmark's default is 1,000,000)", a.Notifications)
		}
		ts = append(ts, t)
	} else {
		ts = append(ts, skipped(5, name, "x", "<=", targetAPIListP99Ratio, why(phaseAPIList, "-api-requests 0")))
	}
	return ts
}

// targetsText is the targets' lines and a count of those met.
func targetsText(r Results, ts []Target) string {
	var b strings.Builder
	b.WriteString("issue 19 targets:\n")
	for _, t := range ts {
		b.WriteString("  " + t.line() + "\n")
	}
	met, measured, unmeasured := 0, 0, 0
	for _, t := range ts {
		switch {
		case !t.Measured:
			unmeasured++
		case t.Op != "":
			measured++
			if t.Met {
				met++
			}
		}
	}
	fmt.Fprintf(&b, "  %d of %d measured targets met (%d not measured) [%d CPUs, load at start %s, at end %s]", met, measured, unmeasured, r.CPUs, r.Load, r.LoadAtEnd)
	return b.String()
}
