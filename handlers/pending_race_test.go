package handlers_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// stressPairs is how many new doctors the stress test registers while a
// result naming each of them arrives.
const stressPairs = 300

// A doctor's user-created event and a result naming that not-yet-known
// doctor, consumed at the same moment, must give the doctor the result's
// notification exactly once, whatever the interleaving of the two
// transactions: nothing may stay parked for a doctor who exists (no sweeper
// runs here to pick it up).
func TestUserCreatedRacesResultForNewDoctor(t *testing.T) {
	for _, name := range testenv.Combinations {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newPipeline(t, name)
			cfg := p.env.Config
			var wg sync.WaitGroup
			for i := range stressPairs {
				ext := fmt.Sprintf("doc-race-%03d", i)
				chk := fmt.Sprintf("CHK-RACE-%03d", i)
				wg.Add(2)
				go func() {
					defer wg.Done()
					p.publish(cfg.TopicUserCreated, "uc-"+ext, "rfd.user-created.v1", ext, doctorEvent(ext, "Dr. "+ext))
				}()
				go func() {
					defer wg.Done()
					p.publish(cfg.TopicCheckupEvents, "ce-"+chk, "rfd.checkup.v1", chk, resultEvent("critical_result", chk, 1, "final", true, ext))
				}()
			}
			wg.Wait()
			testenv.Eventually(t, 120*time.Second, "every event consumed", func() (bool, string) {
				n := p.scalar(`SELECT count(*) FROM inbox WHERE consumer IN ('user-created', 'checkup-events')`)
				return n == 2*stressPairs, fmt.Sprintf("%d of %d", n, 2*stressPairs)
			})

			if n := p.scalar(`SELECT count(*) FROM pending_notifications`); n != 0 {
				t.Errorf("%d intents still parked for doctors who exist", n)
			}
			missing := p.scalar(`SELECT count(*) FROM doctors d WHERE NOT EXISTS (
	SELECT 1 FROM notifications n WHERE n.doctor_id = d.id AND n.type = 'critical_result')`)
			extra := p.scalar(`SELECT count(*) FROM (SELECT doctor_id FROM notifications WHERE type = 'critical_result'
	GROUP BY doctor_id HAVING count(*) > 1) x`)
			doctors := p.scalar(`SELECT count(*) FROM doctors`)
			if doctors != stressPairs || missing != 0 || extra != 0 {
				t.Fatalf("%d doctors: %d without their critical result, %d with more than one", doctors, missing, extra)
			}
		})
	}
}

// The two dangerous interleavings of a result naming a doctor the service
// does not know yet and that doctor's user-created event, each forced by
// holding one side's transaction open at its dangerous point while the
// other side runs through the real consumer:
//
//   - the user-created transaction has registered the doctor and looked
//     for their parked intents, and has not committed: a checkup
//     transaction does not see the doctor and parks the result;
//   - the checkup transaction has parked the result and has not
//     committed: the user-created transaction does not see the intent.
//
// Either way the doctor must end up with the result's notification, once,
// and nothing parked.
func TestParkingAndReleaseInterleavings(t *testing.T) {
	for _, held := range []string{"user-created", "checkup"} {
		t.Run(held+" held open", func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, testenv.PostgresSQL)
			cfg := env.Config
			env.EnsureTopics(t, cfg.TopicSendNotification)
			clock := func() time.Time { return startOfTest }
			notifier := notify.New(env.Outbox, cfg.TopicSendNotification, cfg.PortalURL, clock)
			deps := handlers.Deps{Config: cfg, Inbox: env.Inbox, Outbox: env.Outbox, Notifier: notifier, Now: clock}
			uc, ce := handlers.NewUserCreated(deps), handlers.NewCheckupEvents(deps)
			ucMsg := checkupMessage(t, "uc-held", doctorEvent("doc-held", "Dr. Held"))
			ceMsg := checkupMessage(t, "ce-held", resultEvent("critical_result", "CHK-HELD", 1, "final", true, "doc-held"))
			ctx := context.Background()
			hold, other := func(tx bun.Tx) error { return uc.ApplyInTx(ctx, tx, ucMsg) }, func() error { return ce.Handle(ceMsg) }
			if held == "checkup" {
				hold = func(tx bun.Tx) error { return ce.WorkInTx(ctx, tx, []*message.Message{ceMsg}) }
				other = func() error { return uc.Handle(ucMsg) }
			}

			tx, err := env.DB.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback() }()
			if err := hold(tx); err != nil {
				t.Fatal(err)
			}

			// The other side runs while the held transaction is open, to
			// its end or until it waits for the held one.
			done := make(chan error, 1)
			go func() { done <- other() }()
			var finished bool
			testenv.Eventually(t, 30*time.Second, "the other side finishes or waits for the held transaction", func() (bool, string) {
				select {
				case err := <-done:
					done <- err
					finished = true
					return true, ""
				default:
				}
				var waiting int
				err := env.DB.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND a.datname = current_database()`).Scan(&waiting)
				if err != nil {
					return false, err.Error()
				}
				return waiting > 0, "running"
			})
			t.Logf("other side finished before the held commit: %v", finished)
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("other side: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the other side did not finish after the held transaction committed")
			}

			var results, parked int
			if err := env.DB.QueryRowContext(ctx, `SELECT count(*) FROM notifications n JOIN doctors d ON d.id = n.doctor_id
WHERE d.external_user_id = 'doc-held' AND n.type = 'critical_result'`).Scan(&results); err != nil {
				t.Fatal(err)
			}
			if err := env.DB.QueryRowContext(ctx, `SELECT count(*) FROM pending_notifications`).Scan(&parked); err != nil {
				t.Fatal(err)
			}
			if results != 1 || parked != 0 {
				t.Fatalf("the doctor has %d critical-result notifications and %d intents are parked; want 1 and 0", results, parked)
			}
		})
	}
}
