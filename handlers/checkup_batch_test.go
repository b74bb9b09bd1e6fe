package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun/dialect"

	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/core/notify"
)

func checkupMessage(t *testing.T, id string, ev map[string]any) *message.Message {
	t.Helper()
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return message.NewMessage(id, body)
}

// One transaction for several events must do what they would have done one
// by one: two versions of one checkup (the correction supersedes the first),
// two copies of one message, a message already processed, an unknown doctor,
// a critical result, and two versions of one checkup naming doctors in the
// reverse of the order the transaction locks doctors in.
func TestCheckupEventsInOneTransaction(t *testing.T) {
	eachCombination(t, func(t *testing.T, p *pipeline) {
		p.registerDoctor("doc-b1")
		p.registerDoctor("doc-b2")
		topic := p.env.Config.TopicCheckupEvents
		p.publish(topic, "ce-b-before", "rfd.checkup.v1", "CHK-B0", resultEvent("result_available", "CHK-B0", 1, "final", false, "doc-b1"))
		p.processed("checkup-events", "ce-b-before")

		cfg := p.env.Config
		notifier := notify.New(p.env.Outbox, cfg.TopicSendNotification, cfg.PortalURL, p.clock)
		h := handlers.NewCheckupEvents(handlers.Deps{Config: cfg, Inbox: p.env.Inbox, Outbox: p.env.Outbox, Notifier: notifier, Now: p.clock})
		msgs := []*message.Message{
			checkupMessage(t, "ce-b-v1", resultEvent("result_available", "CHK-B1", 1, "preliminary", false, "doc-b1")),
			checkupMessage(t, "ce-b-crit", resultEvent("critical_result", "CHK-B2", 1, "final", true, "doc-b2", "doc-b1")),
			checkupMessage(t, "ce-b-v2", resultEvent("result_available", "CHK-B1", 2, "corrected", false, "doc-b1")),
			checkupMessage(t, "ce-b-v1", resultEvent("result_available", "CHK-B1", 1, "preliminary", false, "doc-b1")),
			checkupMessage(t, "ce-b-before", resultEvent("result_available", "CHK-B0", 1, "final", false, "doc-b1")),
			checkupMessage(t, "ce-b-unknown", resultEvent("result_available", "CHK-B3", 1, "final", false, "doc-b-later")),
			checkupMessage(t, "ce-b-done", resultEvent("checkup_completed", "CHK-B4", 1, "final", false, "doc-b2")),
			checkupMessage(t, "ce-b5-v1", resultEvent("result_available", "CHK-B5", 1, "preliminary", false, "doc-b2")),
			checkupMessage(t, "ce-b5-v2", resultEvent("result_available", "CHK-B5", 2, "corrected", false, "doc-b1")),
		}
		if err := h.ProcessTogether(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}

		counts := map[string]int{}
		for _, ext := range []string{"doc-b1", "doc-b2"} {
			for _, n := range p.notificationsOf(ext) {
				counts[ext+" "+n.Type+":"+n.State]++
			}
		}
		want := map[string]int{
			"doc-b1 welcome:active":              1,
			"doc-b1 result_available:active":     1, // CHK-B0, before the batch
			"doc-b1 result_available:superseded": 1, // CHK-B1 v1
			"doc-b1 result_corrected:active":     2, // CHK-B1 v2, CHK-B5 v2
			"doc-b1 critical_result:active":      1, // CHK-B2
			"doc-b2 welcome:active":              1,
			"doc-b2 critical_result:active":      1,
			"doc-b2 checkup_completed:active":    1,
			"doc-b2 result_available:superseded": 1, // CHK-B5 v1, then v2
		}
		if fmt.Sprint(counts) != fmt.Sprint(want) {
			t.Fatalf("notifications by doctor, type and state:\n got %v\nwant %v", counts, want)
		}
		for q, want := range map[string]int{
			`SELECT count(*) FROM inbox WHERE consumer = 'checkup-events' AND message_id LIKE 'ce-b-%'`:                           7 - 1,
			`SELECT count(*) FROM result_versions WHERE checkup_id = 'CHK-B1'`:                                                    2,
			`SELECT count(*) FROM pending_notifications WHERE doctor_external_id = 'doc-b-later'`:                                 1,
			`SELECT count(*) FROM checkups WHERE id IN ('CHK-B0', 'CHK-B1', 'CHK-B2', 'CHK-B3', 'CHK-B4')`:                        5,
			`SELECT count(*) FROM deliveries d JOIN notifications n ON n.id = d.notification_id WHERE n.checkup_id LIKE 'CHK-B%'`: 6*2 + 2*4, // critical results go out on every channel
		} {
			if got := p.scalar(q); got != want {
				t.Errorf("%s = %d, want %d", q, got, want)
			}
		}
		// Sequence numbers stay distinct per doctor and in commit order.
		if got := p.scalar(`SELECT count(*) FROM (SELECT doctor_id, seq FROM notifications GROUP BY doctor_id, seq HAVING count(*) > 1) x`); got != 0 {
			t.Errorf("%d duplicated (doctor, seq) pairs", got)
		}
		// Every notification made in the batch has one command per delivery.
		var ids []string
		rows, err := p.env.DB.QueryContext(context.Background(), `SELECT id FROM notifications WHERE source_event_id IN ('ce-b-v1', 'ce-b-crit', 'ce-b-v2', 'ce-b-done', 'ce-b5-v1', 'ce-b5-v2')`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		_ = rows.Close()
		if len(ids) != 7 {
			t.Fatalf("%d notifications from the batch's events, want 7", len(ids))
		}
		for _, id := range ids {
			p.commandsFor(id, p.scalar(`SELECT count(*) FROM deliveries WHERE notification_id = ?`, id))
		}

		// The same batch again changes nothing.
		if err := h.ProcessTogether(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
		if got := p.scalar(`SELECT count(*) FROM notifications n WHERE n.checkup_id LIKE 'CHK-B%'`); got != 8 {
			t.Errorf("after the batch again: %d notifications of the batch's checkups, want 8", got)
		}
	})
}

// A batch is all or nothing: when one event's write fails, no event of the
// batch is recorded, and through the router each of them is then tried on
// its own, so the others are processed and the failing one alone is
// poisoned.
func TestCheckupBatchFailureIsolatesTheEvent(t *testing.T) {
	eachCombination(t, func(t *testing.T, p *pipeline) {
		p.registerDoctor("doc-f")
		ctx := context.Background()
		if p.env.DB.Dialect().Name() == dialect.PG {
			for _, q := range []string{
				`CREATE FUNCTION refuse_chk_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'checkup CHK-FAIL refused by the test'; END $$`,
				`CREATE TRIGGER refuse_chk_fail BEFORE INSERT ON checkups FOR EACH ROW WHEN (NEW.id = 'CHK-FAIL') EXECUTE FUNCTION refuse_chk_fail()`,
			} {
				if _, err := p.env.DB.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
		} else {
			if _, err := p.env.DB.ExecContext(ctx, `CREATE TRIGGER refuse_chk_fail BEFORE INSERT ON checkups FOR EACH ROW WHEN NEW.id = 'CHK-FAIL'
BEGIN SELECT RAISE(ABORT, 'checkup CHK-FAIL refused by the test'); END`); err != nil {
				t.Fatal(err)
			}
		}

		cfg := p.env.Config
		notifier := notify.New(p.env.Outbox, cfg.TopicSendNotification, cfg.PortalURL, p.clock)
		h := handlers.NewCheckupEvents(handlers.Deps{Config: cfg, Inbox: p.env.Inbox, Outbox: p.env.Outbox, Notifier: notifier, Now: p.clock})
		err := h.ProcessTogether(ctx, []*message.Message{
			checkupMessage(t, "ce-f-good", resultEvent("result_available", "CHK-F1", 1, "final", false, "doc-f")),
			checkupMessage(t, "ce-f-bad", resultEvent("result_available", "CHK-FAIL", 1, "final", false, "doc-f")),
		})
		if err == nil || !strings.Contains(err.Error(), "refused by the test") {
			t.Fatalf("batch with a refused write: err = %v", err)
		}
		if got := p.scalar(`SELECT count(*) FROM inbox WHERE message_id LIKE 'ce-f-%'`); got != 0 {
			t.Fatalf("%d inbox rows after a failed batch, want none", got)
		}
		if got := p.scalar(`SELECT count(*) FROM checkups WHERE id = 'CHK-F1'`); got != 0 {
			t.Fatalf("the good event's checkup was stored by a failed batch")
		}

		// Through the router, all at once, with 40 good events around it.
		topic := cfg.TopicCheckupEvents
		p.publish(topic, "ce-f-bad", "rfd.checkup.v1", "CHK-FAIL", resultEvent("result_available", "CHK-FAIL", 1, "final", false, "doc-f"))
		for i := range 40 {
			c := fmt.Sprintf("CHK-F%d", i+1)
			p.publish(topic, "ce-f-good-"+c, "rfd.checkup.v1", c, resultEvent("result_available", c, 1, "final", false, "doc-f"))
		}
		for i := range 40 {
			p.processed("checkup-events", fmt.Sprintf("ce-f-good-CHK-F%d", i+1))
		}
		m := p.poisoned("ce-f-bad")
		if reason := poisonReason(m); !strings.Contains(reason, "refused by the test") {
			t.Errorf("poison reason %q, want the refused write", reason)
		}
		if got := p.scalar(`SELECT count(*) FROM notifications WHERE checkup_id LIKE 'CHK-F%'`); got != 40 {
			t.Errorf("%d notifications, want 40", got)
		}
		time.Sleep(100 * time.Millisecond)
	})
}
