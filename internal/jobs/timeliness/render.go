package timeliness

import (
	"bytes"
	htmltemplate "html/template"
	"math"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// The report e-mail holds what the API report holds: counts, intervals,
// notification and doctor ids, times. No patient data.
var funcs = map[string]any{
	"dur":     fmtSeconds,
	"percent": percent,
	"ts":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"tsp": func(t *time.Time) string {
		if t == nil {
			return "not acknowledged"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
}

const textTmpl = `Critical-result timeliness, {{.From}} to {{.To}} (UTC)
SLA: acknowledged within {{dur .SLASeconds}} of the notification.

Totals: {{.Critical}} critical results, {{.WithinSLA}} acknowledged within the SLA ({{percent .Share}}), {{.BreachCount}} breaches.

{{range .Days}}{{.Date}}: {{.Critical}} critical, {{.WithinSLA}} within SLA ({{percent .ShareWithinSLA}}), {{len .Breaches}} breaches
  event -> notified:        median {{dur .EventToNotified.Median}}, p90 {{dur .EventToNotified.P90}}, max {{dur .EventToNotified.Max}} (n={{.EventToNotified.Count}})
  notified -> delivered:    median {{dur .NotifiedToDeliver.Median}}, p90 {{dur .NotifiedToDeliver.P90}}, max {{dur .NotifiedToDeliver.Max}} (n={{.NotifiedToDeliver.Count}})
  delivered -> acknowledged: median {{dur .DeliveredToAck.Median}}, p90 {{dur .DeliveredToAck.P90}}, max {{dur .DeliveredToAck.Max}} (n={{.DeliveredToAck.Count}})
{{range .Breaches}}  BREACH notification {{.NotificationID}} doctor {{.DoctorID}}: notified {{ts .NotifiedAt}}, {{tsp .AcknowledgedAt}}, escalation level {{.EscalationLevel}}
{{end}}{{end}}
The same report is served by GET /v1/admin/reports/critical-timeliness?from={{.From}}&to={{.To}}.
`

const htmlTmpl = `<!doctype html>
<html><body style="font-family: sans-serif">
<h2>Critical-result timeliness, {{.From}} to {{.To}} (UTC)</h2>
<p>SLA: acknowledged within {{dur .SLASeconds}} of the notification.<br>
<strong>{{.Critical}}</strong> critical results, <strong>{{.WithinSLA}}</strong> acknowledged within the SLA ({{percent .Share}}), <strong>{{.BreachCount}}</strong> breaches.</p>
<table border="1" cellpadding="4" cellspacing="0">
<tr><th>Day</th><th>Critical</th><th>Within SLA</th><th>Event &rarr; notified (median / p90)</th><th>Notified &rarr; delivered (median / p90)</th><th>Delivered &rarr; acknowledged (median / p90)</th><th>Breaches</th></tr>
{{range .Days}}<tr><td>{{.Date}}</td><td>{{.Critical}}</td><td>{{.WithinSLA}} ({{percent .ShareWithinSLA}})</td><td>{{dur .EventToNotified.Median}} / {{dur .EventToNotified.P90}}</td><td>{{dur .NotifiedToDeliver.Median}} / {{dur .NotifiedToDeliver.P90}}</td><td>{{dur .DeliveredToAck.Median}} / {{dur .DeliveredToAck.P90}}</td><td>{{len .Breaches}}</td></tr>
{{end}}</table>
{{if .BreachCount}}<h3>Breaches</h3>
<table border="1" cellpadding="4" cellspacing="0">
<tr><th>Notification</th><th>Doctor</th><th>Notified</th><th>Acknowledged</th><th>Escalation level</th></tr>
{{range .Days}}{{range .Breaches}}<tr><td>{{.NotificationID}}</td><td>{{.DoctorID}}</td><td>{{ts .NotifiedAt}}</td><td>{{tsp .AcknowledgedAt}}</td><td>{{.EscalationLevel}}</td></tr>
{{end}}{{end}}</table>{{end}}
</body></html>
`

var (
	textT = template.Must(template.New("text").Funcs(funcs).Parse(textTmpl))
	htmlT = htmltemplate.Must(htmltemplate.New("html").Funcs(funcs).Parse(htmlTmpl))
)

type mailView struct {
	Report
	Critical, WithinSLA, BreachCount int
	Share                            float64
}

// RenderMail returns the report e-mail's subject, text and HTML bodies.
func RenderMail(rep Report) (subject, text, html string, err error) {
	v := mailView{Report: rep, Share: 1}
	for _, d := range rep.Days {
		v.Critical += d.Critical
		v.WithinSLA += d.WithinSLA
		v.BreachCount += len(d.Breaches)
	}
	if v.Critical > 0 {
		v.Share = float64(v.WithinSLA) / float64(v.Critical)
	}
	var tb, hb bytes.Buffer
	if err := textT.Execute(&tb, v); err != nil {
		return "", "", "", err
	}
	if err := htmlT.Execute(&hb, v); err != nil {
		return "", "", "", err
	}
	subject = "RFD Notify: critical-result timeliness " + rep.From + " to " + rep.To +
		" (" + strconv.Itoa(v.BreachCount) + " breaches)"
	return subject, tb.String(), hb.String(), nil
}

// fmtSeconds prints a duration in seconds the way people read it: "45s",
// "12m30s", "2h5m", "-" for none.
func fmtSeconds(s float64) string {
	if s == 0 {
		return "-"
	}
	d := time.Duration(math.Round(s)) * time.Second
	if d >= time.Hour {
		d = d.Round(time.Minute)
	}
	out := d.String() // "1h5m0s", "12m30s", "45s"
	if d >= time.Minute {
		out = strings.TrimSuffix(out, "0s")
	}
	if d >= time.Hour {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}

func percent(f float64) string {
	return strings.TrimSuffix(strconv.FormatFloat(f*100, 'f', 1, 64), ".0") + "%"
}
