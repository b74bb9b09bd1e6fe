package handlers_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/store"
)

func channelsOf(cmds []events.SendNotification) []string {
	var out []string
	for _, c := range cmds {
		out = append(out, c.Channel)
	}
	slices.Sort(out)
	return out
}

func TestCheckupResultHappyPathAndDuplicate(t *testing.T) {
	eachCombination(t, func(t *testing.T, p *pipeline) {
		p.registerDoctor("doc-a")
		topic := p.env.Config.TopicCheckupEvents
		ev := resultEvent("result_available", "CHK-1", 1, "final", false, "doc-a")
		p.publish(topic, "ce-chk-1", "rfd.checkup.v1", "CHK-1", ev)
		p.processed("checkup-events", "ce-chk-1")
		// The exact same event again: a redelivery changes nothing.
		p.publish(topic, "ce-chk-1", "rfd.checkup.v1", "CHK-1", ev)
		p.publish(topic, "ce-chk-1-sentinel", "rfd.checkup.v1", "CHK-1", resultEvent("checkup_completed", "CHK-1", 1, "final", false, "doc-a"))
		p.processed("checkup-events", "ce-chk-1-sentinel")

		ns := p.notificationsOf("doc-a")
		var results []notification
		for _, n := range ns {
			if n.Type == "result_available" {
				results = append(results, n)
			}
		}
		if len(results) != 1 {
			t.Fatalf("result notifications = %+v, want exactly one", ns)
		}
		n := results[0]
		if n.Category != "results" || n.Priority != "normal" || n.State != "active" {
			t.Fatalf("notification = %+v", n)
		}
		cmds := p.commandsFor(n.ID, 2)
		if got := channelsOf(cmds); !slices.Equal(got, []string{"email", "in_app"}) {
			t.Fatalf("channels = %v, want the default in_app + email", got)
		}
		if got := p.scalar(`SELECT count(*) FROM result_versions WHERE checkup_id = 'CHK-1'`); got != 1 {
			t.Fatalf("result versions = %d", got)
		}
		if got := p.scalar(`SELECT count(*) FROM deliveries WHERE notification_id = ? AND status = 'queued'`, n.ID); got != 2 {
			t.Fatalf("queued deliveries = %d, want 2", got)
		}
	})
}

func TestCheckupUnknownDoctorThenUserCreated(t *testing.T) {
	eachCombination(t, func(t *testing.T, p *pipeline) {
		topic := p.env.Config.TopicCheckupEvents
		p.publish(topic, "ce-early", "rfd.checkup.v1", "CHK-2", resultEvent("result_available", "CHK-2", 1, "final", false, "doc-late"))
		p.processed("checkup-events", "ce-early")
		if got := p.scalar(`SELECT count(*) FROM pending_notifications WHERE doctor_external_id = 'doc-late'`); got != 1 {
			t.Fatalf("pending intents = %d, want 1: the event must be kept", got)
		}
		if got := p.scalar(`SELECT count(*) FROM checkups WHERE id = 'CHK-2'`); got != 1 {
			t.Fatal("the checkup itself must be stored at once")
		}

		p.registerDoctor("doc-late")
		ns := p.notificationsOf("doc-late")
		types := []string{}
		for _, n := range ns {
			types = append(types, n.Type)
		}
		if !slices.Contains(types, "result_available") || !slices.Contains(types, "welcome") {
			t.Fatalf("after user-created the doctor has %v, want the welcome and the held result", types)
		}
		if got := p.scalar(`SELECT count(*) FROM pending_notifications`); got != 0 {
			t.Fatalf("pending intents left = %d", got)
		}
	})
}

func TestCriticalResultInsideQuietHours(t *testing.T) {
	eachCombination(t, func(t *testing.T, p *pipeline) {
		p.registerDoctor("doc-q")
		setQuietHours(t, p, "doc-q", "22:00", "07:00")
		// 23:30 in Bangkok.
		p.setClock(time.Date(2026, 11, 25, 16, 30, 0, 0, time.UTC))
		topic := p.env.Config.TopicCheckupEvents
		p.publish(topic, "ce-crit", "rfd.checkup.v1", "CHK-3", resultEvent("critical_result", "CHK-3", 1, "final", true, "doc-q"))
		p.publish(topic, "ce-normal", "rfd.checkup.v1", "CHK-4", resultEvent("result_available", "CHK-4", 1, "final", false, "doc-q"))
		p.processed("checkup-events", "ce-crit")
		p.processed("checkup-events", "ce-normal")

		var crit, normal *notification
		for _, n := range p.notificationsOf("doc-q") {
			switch n.Type {
			case "critical_result":
				crit = &n
			case "result_available":
				normal = &n
			}
		}
		if crit == nil || normal == nil {
			t.Fatal("missing notifications")
		}
		now := time.Date(2026, 11, 25, 16, 30, 0, 0, time.UTC)
		if !crit.SendAt.Equal(now) || crit.Category != "critical_results" || crit.Priority != "critical" {
			t.Fatalf("critical result = %+v: must go out at once (%s)", crit, now)
		}
		endOfWindow := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC) // 07:00 Bangkok
		if !normal.SendAt.Equal(endOfWindow) {
			t.Fatalf("normal result send_at = %s, want the end of the quiet window %s", normal.SendAt, endOfWindow)
		}
		cmds := p.commandsFor(crit.ID, 4)
		if got := channelsOf(cmds); !slices.Equal(got, []string{"email", "in_app", "push", "sms"}) {
			t.Fatalf("critical channels = %v", got)
		}
		for _, c := range p.commandsFor(normal.ID, 2) {
			if !c.SendAt.Equal(endOfWindow) {
				t.Fatalf("deferred command send_at = %s, want %s", c.SendAt, endOfWindow)
			}
		}
	})
}

func TestOptedOutChannel(t *testing.T) {
	eachCombination(t, func(t *testing.T, p *pipeline) {
		p.registerDoctor("doc-o")
		prefs := domain.DefaultPreferences()
		prefs.Channels[domain.CategoryResults] = []domain.Channel{domain.ChannelInApp}
		prefs.Channels[domain.CategoryCriticalResults] = nil // cannot switch off in_app
		storePreferences(t, p, "doc-o", prefs)

		topic := p.env.Config.TopicCheckupEvents
		p.publish(topic, "ce-opt-1", "rfd.checkup.v1", "CHK-5", resultEvent("result_available", "CHK-5", 1, "final", false, "doc-o"))
		p.publish(topic, "ce-opt-2", "rfd.checkup.v1", "CHK-6", resultEvent("critical_result", "CHK-6", 1, "final", true, "doc-o"))
		p.processed("checkup-events", "ce-opt-1")
		p.processed("checkup-events", "ce-opt-2")
		for _, n := range p.notificationsOf("doc-o") {
			switch n.Type {
			case "result_available", "critical_result":
				if got := channelsOf(p.commandsFor(n.ID, 1)); !slices.Equal(got, []string{"in_app"}) {
					t.Fatalf("%s channels = %v, want in_app only", n.Type, got)
				}
			}
		}
	})
}

func TestCorrectedAndRetractedResults(t *testing.T) {
	eachCombination(t, func(t *testing.T, p *pipeline) {
		p.registerDoctor("doc-c")
		topic := p.env.Config.TopicCheckupEvents
		p.publish(topic, "ce-v1", "rfd.checkup.v1", "CHK-7", resultEvent("result_available", "CHK-7", 1, "preliminary", false, "doc-c"))
		p.processed("checkup-events", "ce-v1")
		p.publish(topic, "ce-v2", "rfd.checkup.v1", "CHK-7", resultEvent("result_available", "CHK-7", 2, "corrected", false, "doc-c"))
		p.processed("checkup-events", "ce-v2")

		states := map[string]string{}
		for _, n := range p.notificationsOf("doc-c") {
			states[n.Type] = n.State
		}
		if states["result_available"] != "superseded" || states["result_corrected"] != "active" {
			t.Fatalf("after the correction: %v, want v1 superseded and the correction active", states)
		}

		// A late preliminary v1 duplicate under another event id changes nothing.
		p.publish(topic, "ce-v1-late", "rfd.checkup.v1", "CHK-7", resultEvent("result_available", "CHK-7", 1, "preliminary", false, "doc-c"))
		p.processed("checkup-events", "ce-v1-late")

		p.publish(topic, "ce-v3", "rfd.checkup.v1", "CHK-7", resultEvent("result_available", "CHK-7", 3, "entered_in_error", false, "doc-c"))
		p.processed("checkup-events", "ce-v3")
		counts := map[string]int{}
		for _, n := range p.notificationsOf("doc-c") {
			counts[n.Type+":"+n.State]++
		}
		want := map[string]int{"welcome:active": 1, "result_available:superseded": 1, "result_corrected:retracted": 1, "result_retracted:active": 1}
		for k, v := range want {
			if counts[k] != v {
				t.Fatalf("after entered-in-error: %v, want %v", counts, want)
			}
		}
		if got := p.scalar(`SELECT count(*) FROM result_versions WHERE checkup_id = 'CHK-7'`); got != 3 {
			t.Fatalf("result versions kept = %d, want 3", got)
		}
	})
}

func TestCheckupBadInput(t *testing.T) {
	eachCombination(t, func(t *testing.T, p *pipeline) {
		p.registerDoctor("doc-b")
		topic := p.env.Config.TopicCheckupEvents
		missing := resultEvent("result_available", "CHK-8", 1, "final", false, "doc-b")
		delete(missing, "checkup_id")
		unknownType := resultEvent("result_available", "CHK-8", 1, "final", false, "doc-b")
		unknownType["event_type"] = "checkup_teleported"
		noResult := resultEvent("result_available", "CHK-8", 1, "final", false, "doc-b")
		delete(noResult, "result")

		p.publish(topic, "bad-json", "rfd.checkup.v1", "CHK-8", "{not json")
		p.publish(topic, "bad-missing", "rfd.checkup.v1", "CHK-8", missing)
		p.publish(topic, "bad-type", "rfd.checkup.v1", "CHK-8", unknownType)
		p.publish(topic, "bad-noresult", "rfd.checkup.v1", "CHK-8", noResult)
		// A valid checkup payload under another CloudEvents type.
		p.publish(topic, "bad-cetype", "rfd.checkup.v9", "CHK-8", resultEvent("result_available", "CHK-8", 1, "final", false, "doc-b"))
		p.publish(topic, "good-after", "rfd.checkup.v1", "CHK-8", resultEvent("result_available", "CHK-8", 1, "final", false, "doc-b"))
		p.processed("checkup-events", "good-after")

		for id, field := range map[string]string{"bad-json": "", "bad-missing": "checkup_id", "bad-type": "/event_type", "bad-noresult": "result", "bad-cetype": "ce_type: unknown event type \"rfd.checkup.v9\""} {
			m := p.poisoned(id)
			reason := poisonReason(m)
			if reason == "" || !strings.Contains(reason, field) {
				t.Errorf("%s poisoned with reason %q, want it to name %q", id, reason, field)
			}
			if strings.Contains(reason, "Somchai") {
				t.Errorf("%s: poison reason leaks patient data: %q", id, reason)
			}
		}
	})
}

func setQuietHours(t *testing.T, p *pipeline, ext, start, end string) {
	t.Helper()
	prefs := domain.DefaultPreferences()
	prefs.QuietHours = domain.QuietHours{Start: start, End: end}
	storePreferences(t, p, ext, prefs)
}

func storePreferences(t *testing.T, p *pipeline, ext string, prefs domain.Preferences) {
	t.Helper()
	row := store.NewPreferencesRow(handlers.DoctorID(ext), prefs, p.clock())
	if _, err := p.env.DB.NewInsert().Model(&row).On("CONFLICT (doctor_id) DO UPDATE").
		Set("channels = EXCLUDED.channels, quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end").
		Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
}
