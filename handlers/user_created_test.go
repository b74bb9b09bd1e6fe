package handlers_test

import (
	"testing"
)

func TestUserCreatedRepeatAndUpdate(t *testing.T) {
	eachCombination(t, func(t *testing.T, p *pipeline) {
		topic := p.env.Config.TopicUserCreated
		first := doctorEvent("doc-u", "Dr. Anong Srisuk")
		p.publish(topic, "u1", "rfd.user-created.v1", "doc-u", first)
		p.processed("user-created", "u1")
		p.publish(topic, "u1", "rfd.user-created.v1", "doc-u", first) // redelivery

		update := doctorEvent("doc-u", "Dr. Anong Srisuk-Wong")
		update["updated_at"] = "2026-11-25T05:00:00Z"
		update["locale"] = "th"
		p.publish(topic, "u2", "rfd.user-created.v1", "doc-u", update)
		stale := doctorEvent("doc-u", "Dr. Old Name")
		stale["updated_at"] = "2026-11-24T05:00:00Z"
		p.publish(topic, "u3", "rfd.user-created.v1", "doc-u", stale)
		p.processed("user-created", "u2")
		p.processed("user-created", "u3")

		if got := p.scalar(`SELECT count(*) FROM doctors WHERE external_user_id = 'doc-u'`); got != 1 {
			t.Fatalf("doctors = %d, want 1", got)
		}
		if got := p.str(`SELECT name FROM doctors WHERE external_user_id = 'doc-u'`); got != "Dr. Anong Srisuk-Wong" {
			t.Fatalf("name = %q: the newest update must win, an older one must not", got)
		}
		if got := p.str(`SELECT locale FROM doctors WHERE external_user_id = 'doc-u'`); got != "th" {
			t.Fatalf("locale = %q", got)
		}
		if got := p.scalar(`SELECT count(*) FROM doctor_preferences`); got != 1 {
			t.Fatalf("preferences rows = %d", got)
		}
		welcomes := 0
		for _, n := range p.notificationsOf("doc-u") {
			if n.Type == "welcome" {
				welcomes++
				p.commandsFor(n.ID, 1)
			}
		}
		if welcomes != 1 {
			t.Fatalf("welcome notifications = %d, want 1", welcomes)
		}
	})
}

func TestUserCreatedIgnoresStaffAndPoisonsBadInput(t *testing.T) {
	eachCombination(t, func(t *testing.T, p *pipeline) {
		topic := p.env.Config.TopicUserCreated
		staff := doctorEvent("staff-1", "Nurse Joy")
		staff["user_type"] = "staff"
		p.publish(topic, "s1", "rfd.user-created.v1", "staff-1", staff)
		bad := doctorEvent("doc-bad", "Dr. Bad")
		bad["email"] = 42
		p.publish(topic, "s2", "rfd.user-created.v1", "doc-bad", bad)
		p.processed("user-created", "s1")
		if got := p.scalar(`SELECT count(*) FROM doctors`); got != 0 {
			t.Fatalf("doctors = %d: staff are not referring doctors", got)
		}
		if r := poisonReason(p.poisoned("s2")); r == "" {
			t.Error("no poison reason")
		}
	})
}
