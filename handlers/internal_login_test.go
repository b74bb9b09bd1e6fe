package handlers_test

import (
	"testing"
	"time"
)

func TestInternalLogin(t *testing.T) {
	eachCombination(t, func(t *testing.T, p *pipeline) {
		p.registerDoctor("doc-l")
		topic := p.env.Config.TopicInternalLogin
		at := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
		send := func(id, outcome, ip string, t time.Time) {
			p.publish(topic, id, "rfd.internal-login.v1", "doc-l", loginEvent("doc-l", outcome, ip, t))
			p.processed("internal-login", id)
		}
		send("l1", "success", "203.0.113.7", at)                    // first ever: nothing to compare with
		send("l2", "success", "203.0.113.7", at.Add(time.Hour))     // known IP
		send("l3", "success", "198.51.100.23", at.Add(2*time.Hour)) // new IP
		send("l4", "success", "198.51.100.23", at.Add(3*time.Hour)) // now known
		for i := range 5 {                                          // a burst of failures
			send("f"+string(rune('a'+i)), "failure", "192.0.2.99", at.Add(4*time.Hour+time.Duration(i)*time.Minute))
		}
		send("f-more", "failure", "192.0.2.99", at.Add(4*time.Hour+6*time.Minute)) // same window: no second alert

		if got := p.scalar(`SELECT count(*) FROM login_audit WHERE doctor_external_id = 'doc-l'`); got != 10 {
			t.Fatalf("audit rows = %d, want every login", got)
		}
		counts := map[string]int{}
		for _, n := range p.notificationsOf("doc-l") {
			counts[n.Type]++
			if n.Type == "new_device_login" || n.Type == "failed_login_alert" {
				if n.Category != "security" {
					t.Errorf("%s category %s", n.Type, n.Category)
				}
				p.commandsFor(n.ID, 2) // security: in_app + email by default
			}
		}
		if counts["new_device_login"] != 1 || counts["failed_login_alert"] != 1 {
			t.Fatalf("security notifications = %v, want one new-device and one failed-login alert", counts)
		}
	})
}
