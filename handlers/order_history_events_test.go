package handlers_test

import (
	"testing"
)

func TestOrderHistoryOutOfOrderAndDuplicates(t *testing.T) {
	eachCombination(t, func(t *testing.T, p *pipeline) {
		p.registerDoctor("doc-r")
		topic := p.env.Config.TopicOrderHistoryEvents
		send := func(id string, seq int, status string) {
			p.publish(topic, id, "rfd.order-history.v1", "ORD-9", orderEvent("ORD-9", seq, status, "doc-r"))
		}
		send("o1", 1, "placed")
		send("o2", 2, "scheduled")
		send("o4", 4, "completed")
		send("o3", 3, "in_progress") // late
		send("o4", 4, "completed")   // duplicate delivery
		send("o2b", 2, "scheduled")  // same sequence under another id
		for _, id := range []string{"o1", "o2", "o4", "o3", "o2b"} {
			p.processed("order-history-events", id)
		}

		if got := p.str(`SELECT status FROM orders WHERE id = 'ORD-9'`); got != "completed" {
			t.Fatalf("order state = %s, want completed: a late event must not regress it", got)
		}
		if got := p.scalar(`SELECT count(*) FROM order_events WHERE order_id = 'ORD-9'`); got != 4 {
			t.Fatalf("timeline has %d events, want 4", got)
		}
		if got := p.scalar(`SELECT count(*) FROM order_events WHERE order_id = 'ORD-9' AND seq = 3 AND NOT applied`); got != 1 {
			t.Fatal("the late event must be in the timeline, marked not applied")
		}
		var orderNotes []notification
		for _, n := range p.notificationsOf("doc-r") {
			if n.Type == "order_status" {
				orderNotes = append(orderNotes, n)
			}
		}
		if len(orderNotes) != 1 {
			t.Fatalf("order notifications = %+v, want one (completed; placed/scheduled/in_progress are not configured)", orderNotes)
		}
		p.commandsFor(orderNotes[0].ID, 1) // orders: in_app by default
	})
}

func TestOrderHistoryBadInput(t *testing.T) {
	eachCombination(t, func(t *testing.T, p *pipeline) {
		topic := p.env.Config.TopicOrderHistoryEvents
		bad := orderEvent("ORD-10", 0, "completed", "doc-x")
		p.publish(topic, "ob-seq", "rfd.order-history.v1", "ORD-10", bad)
		wrong := orderEvent("ORD-10", 1, "teleported", "doc-x")
		p.publish(topic, "ob-status", "rfd.order-history.v1", "ORD-10", wrong)
		p.publish(topic, "ob-ok", "rfd.order-history.v1", "ORD-10", orderEvent("ORD-10", 1, "placed", "doc-x"))
		p.processed("order-history-events", "ob-ok")
		if r := poisonReason(p.poisoned("ob-seq")); r == "" {
			t.Error("sequence 0 poisoned without a reason")
		}
		if r := poisonReason(p.poisoned("ob-status")); r == "" {
			t.Error("unknown status poisoned without a reason")
		}
	})
}
