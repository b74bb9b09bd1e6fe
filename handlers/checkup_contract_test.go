package handlers_test

import (
	"strings"
	"testing"

	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// everyCombination runs fn on every backend and transport, the consumer
// on the real router.
func everyCombination(t *testing.T, fn func(t *testing.T, p *pipeline)) {
	t.Helper()
	for _, name := range testenv.Combinations {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, newPipeline(t, name))
		})
	}
}

func cancelledEvent(checkup string, doctors ...string) map[string]any {
	ev := resultEvent("checkup_cancelled", checkup, 0, "", false, doctors...)
	delete(ev, "result")
	return ev
}

// TestSupersededNotificationPointsAtItsSuccessor: a correction supersedes
// the earlier version's notification and fills its superseded_by with the
// correction's notification for the same doctor; a further version moves
// only the then-active one.
func TestSupersededNotificationPointsAtItsSuccessor(t *testing.T) {
	everyCombination(t, func(t *testing.T, p *pipeline) {
		p.registerDoctor("doc-s")
		p.registerDoctor("doc-t")
		topic := p.env.Config.TopicCheckupEvents
		p.publish(topic, "ce-s1", "rfd.checkup.v1", "CHK-S", resultEvent("result_available", "CHK-S", 1, "final", false, "doc-s", "doc-t"))
		p.processed("checkup-events", "ce-s1")
		p.publish(topic, "ce-s2", "rfd.checkup.v1", "CHK-S", resultEvent("result_available", "CHK-S", 2, "corrected", false, "doc-s", "doc-t"))
		p.processed("checkup-events", "ce-s2")
		p.publish(topic, "ce-s3", "rfd.checkup.v1", "CHK-S", resultEvent("result_available", "CHK-S", 3, "corrected", false, "doc-s"))
		p.processed("checkup-events", "ce-s3")

		of := func(ext string, version int) (id, state, supersededBy string) {
			t.Helper()
			id = p.str(`SELECT n.id FROM notifications n JOIN doctors d ON d.id = n.doctor_id WHERE d.external_user_id = ? AND n.checkup_id = 'CHK-S' AND n.result_version = ?`, ext, version)
			state = p.str(`SELECT state FROM notifications WHERE id = ?`, id)
			supersededBy = p.str(`SELECT COALESCE(superseded_by, '') FROM notifications WHERE id = ?`, id)
			return id, state, supersededBy
		}
		s1, st1, by1 := of("doc-s", 1)
		s2, st2, by2 := of("doc-s", 2)
		s3, st3, by3 := of("doc-s", 3)
		if st1 != "superseded" || by1 != s2 || st2 != "superseded" || by2 != s3 || st3 != "active" || by3 != "" {
			t.Fatalf("doc-s: v1 %s %s→%q, v2 %s %s→%q, v3 %s %s→%q: want v1→v2, v2→v3, v3 active", s1, st1, by1, s2, st2, by2, s3, st3, by3)
		}
		// doc-t is not on version 3: their version 2 stays superseded by
		// nothing of theirs.
		t1, tst1, tby1 := of("doc-t", 1)
		t2, tst2, tby2 := of("doc-t", 2)
		if tst1 != "superseded" || tby1 != t2 || tst2 != "superseded" || tby2 != "" {
			t.Fatalf("doc-t: v1 %s %s→%q, v2 %s %s→%q", t1, tst1, tby1, t2, tst2, tby2)
		}
	})
}

// TestCheckupCancelledTellsTheDoctors: cancelling a checkup retracts its
// notifications and sends each doctor who had an active one a
// result_retracted notice of its own, once, however often the cancellation
// arrives; a doctor named on the checkup but never notified gets none.
func TestCheckupCancelledTellsTheDoctors(t *testing.T) {
	everyCombination(t, func(t *testing.T, p *pipeline) {
		for _, d := range []string{"doc-x", "doc-y", "doc-z"} {
			p.registerDoctor(d)
		}
		topic := p.env.Config.TopicCheckupEvents
		p.publish(topic, "ce-c1", "rfd.checkup.v1", "CHK-C", resultEvent("result_available", "CHK-C", 1, "final", false, "doc-x", "doc-y"))
		p.processed("checkup-events", "ce-c1")

		cancel := cancelledEvent("CHK-C", "doc-x", "doc-y", "doc-z")
		p.publish(topic, "ce-cancel", "rfd.checkup.v1", "CHK-C", cancel)
		p.processed("checkup-events", "ce-cancel")
		// A redelivery, and the same cancellation under another event id.
		p.publish(topic, "ce-cancel", "rfd.checkup.v1", "CHK-C", cancel)
		p.publish(topic, "ce-cancel-again", "rfd.checkup.v1", "CHK-C", cancel)
		p.processed("checkup-events", "ce-cancel-again")

		for _, d := range []string{"doc-x", "doc-y"} {
			counts := map[string]int{}
			var notice notification
			for _, n := range p.notificationsOf(d) {
				counts[n.Type+":"+n.State]++
				if n.Type == templates.TypeResultRetracted {
					notice = n
				}
			}
			if counts["result_available:retracted"] != 1 || counts["result_retracted:active"] != 1 || len(counts) != 3 {
				t.Fatalf("%s: %v, want the result retracted and one active result_retracted notice (and the welcome)", d, counts)
			}
			if notice.Priority != "high" || notice.Category != "results" {
				t.Fatalf("%s: notice %+v", d, notice)
			}
			if got := channelsOf(p.commandsFor(notice.ID, 2)); strings.Join(got, ",") != "email,in_app" {
				t.Fatalf("%s: notice channels %v", d, got)
			}
		}
		for _, n := range p.notificationsOf("doc-z") {
			if n.Type != templates.TypeWelcome {
				t.Fatalf("doc-z was never notified about CHK-C but got %+v", n)
			}
		}
		// The notice names the patient in-app only.
		data := templates.Data{PatientName: "Somchai Jaidee", PatientRef: "PT-1001", CheckupID: "CHK-C", PortalURL: "https://portal.example/n/1"}
		for _, ch := range []string{"sms", "push", "email"} {
			r, err := templates.Render(templates.TypeResultRetracted, ch, "en", data)
			if err != nil {
				t.Fatal(err)
			}
			if all := r.Subject + r.Text + r.HTML + r.Title + r.Body; strings.Contains(all, "Somchai") || strings.Contains(all, "PT-1001") {
				t.Fatalf("%s notice carries the patient: %q", ch, all)
			}
		}
	})
}

// TestWithdrawnResultTellsOnlyThoseWhoWereTold: an entered-in-error result
// tells the doctors who had its notification; a doctor the withdrawal names
// for the first time, known or not yet registered, learns nothing of it.
func TestWithdrawnResultTellsOnlyThoseWhoWereTold(t *testing.T) {
	everyCombination(t, func(t *testing.T, p *pipeline) {
		p.registerDoctor("doc-told")
		p.registerDoctor("doc-new")
		topic := p.env.Config.TopicCheckupEvents
		p.publish(topic, "ce-w1", "rfd.checkup.v1", "CHK-W", resultEvent("result_available", "CHK-W", 1, "final", false, "doc-told"))
		p.processed("checkup-events", "ce-w1")
		p.publish(topic, "ce-w2", "rfd.checkup.v1", "CHK-W", resultEvent("result_available", "CHK-W", 2, "entered_in_error", false, "doc-told", "doc-new", "doc-unknown"))
		p.processed("checkup-events", "ce-w2")

		notices := 0
		for _, n := range p.notificationsOf("doc-told") {
			if n.Type == templates.TypeResultRetracted {
				notices++
			}
		}
		if notices != 1 {
			t.Fatalf("doc-told got %d withdrawal notices, want 1", notices)
		}
		for _, n := range p.notificationsOf("doc-new") {
			if n.Type != templates.TypeWelcome {
				t.Fatalf("doc-new was never told of CHK-W but got %+v", n)
			}
		}
		if n := p.scalar(`SELECT COUNT(*) FROM pending_notifications WHERE doctor_external_id = ?`, "doc-unknown"); n != 0 {
			t.Fatalf("%d notices wait for a doctor never told of the result, want 0", n)
		}
	})
}
