package delivery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/msgerr"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/delivery/channels"
	"github.com/rfd-notify/rfd/internal/platform/groupcommit"
	"github.com/rfd-notify/rfd/internal/platform/tracing"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/outbox"
)

// Options tune retries.
type Options struct {
	MaxAttempts    int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// SendTopic is where retry and fallback commands are published.
	SendTopic string
	// InAppTopic is the broadcast topic of in-app notifications.
	InAppTopic string
	// ConsumerName names the inbox rows of finished attempts.
	ConsumerName string
	// Batch is the most commands one claim transaction, and one record
	// transaction, takes (see groupcommit); 1 gives each its own.
	Batch int
}

// Dispatcher is the send-notification consumer's work.
type Dispatcher struct {
	db       *bun.DB
	inbox    *store.Inbox
	outbox   *outbox.Publisher
	senders  Senders
	opts     Options
	now      func() time.Time
	logger   *slog.Logger
	outcomes *prometheus.CounterVec
	batches  *prometheus.HistogramVec
	claims   *groupcommit.Group[*claimItem]
	inApps   *groupcommit.Group[*claimItem]
	records  *groupcommit.Group[*recordItem]
}

// batchesRunning is how many claim (and how many record) transactions of
// one process run at once. One, as in the checkup consumer: the commands
// arriving meanwhile make the next batch larger, and two batches of one
// process never wait on each other's row locks.
const batchesRunning = 1

// NewDispatcher returns the dispatcher; its metrics are registered in reg.
func NewDispatcher(db *bun.DB, inbox *store.Inbox, ob *outbox.Publisher, senders Senders, opts Options,
	now func() time.Time, reg prometheus.Registerer, logger *slog.Logger) (*Dispatcher, error) {
	if now == nil {
		now = time.Now
	}
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "rfd", Name: "deliveries_total",
		Help: "Delivery attempts finished, by channel and resulting status.",
	}, []string{"channel", "status"})
	if err := reg.Register(outcomes); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("delivery metrics: %w", err)
		}
		outcomes = are.ExistingCollector.(*prometheus.CounterVec)
	}
	batches := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "rfd", Name: "delivery_batch_size",
		Help:    "Send-notification commands per transaction of the dispatcher, by step (claim, record).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
	}, []string{"step"})
	if err := reg.Register(batches); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("delivery metrics: %w", err)
		}
		batches = are.ExistingCollector.(*prometheus.HistogramVec)
	}
	d := &Dispatcher{db: db, inbox: inbox, outbox: ob, senders: senders, opts: opts, now: now, logger: logger,
		outcomes: outcomes, batches: batches}
	d.claims = groupcommit.New(d.claimBatch, opts.Batch, batchesRunning)
	d.inApps = groupcommit.New(d.inAppBatch, opts.Batch, batchesRunning)
	d.records = groupcommit.New(d.recordBatch, opts.Batch, batchesRunning)
	return d, nil
}

// outcome is one count of rfd_deliveries_total, made in a transaction and
// counted once that transaction has committed.
type outcome struct{ channel, status string }

// tally collects a transaction's outcomes.
type tally []outcome

func (t *tally) add(ch domain.Channel, status string) { *t = append(*t, outcome{string(ch), status}) }

func (d *Dispatcher) count(t tally) {
	for _, o := range t {
		d.outcomes.WithLabelValues(o.channel, o.status).Inc()
	}
}

// job is everything one attempt needs, read in the claim transaction.
type job struct {
	cmd          events.SendNotification
	delivery     store.Delivery
	notification store.Notification
	doctor       domain.Doctor
	prefs        domain.Preferences
	targets      Targets
}

// Handle delivers one send-notification command.
func (d *Dispatcher) Handle(msg *message.Message) error {
	cmd, err := events.DecodeSendNotification(msg.Payload)
	if err != nil {
		return msgerr.Permanent(err)
	}
	ctx := msg.Context()
	if cmd.Channel == string(domain.ChannelInApp) {
		return d.deliverInApp(ctx, msg.UUID, cmd)
	}

	j, proceed, err := d.claim(ctx, cmd)
	if err != nil || !proceed {
		return err
	}

	started := d.now().UTC()
	sctx, span := tracing.Tracer().Start(ctx, "deliver "+string(j.delivery.Channel), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("rfd.channel", string(j.delivery.Channel)), attribute.String("rfd.delivery_id", j.delivery.ID),
			attribute.Int("rfd.attempt", j.cmd.Attempt)))
	res := d.senders.send(sctx, j)
	if res.err != nil {
		span.SetStatus(codes.Error, "provider call failed")
		// The provider's own words stop here: the database and the API
		// keep only the reason code (see Classify).
		d.logger.WarnContext(ctx, "delivery: attempt failed", "delivery_id", j.delivery.ID, "channel", string(j.delivery.Channel),
			"attempt", j.cmd.Attempt, "reason_code", Classify(res.err), "permanent", channels.IsPermanent(res.err), "error", res.err.Error())
	}
	span.End()
	return d.recordAfterSend(ctx, msg.UUID, j, started, res)
}

// recordAttempts bounds how often recordAfterSend tries to store an
// attempt's outcome before giving the message back to the router.
const recordAttempts = 5

// recordAfterSend stores the outcome of a provider call, retrying a
// failed transaction (a deadlock, a serialization failure, a dropped
// connection) here rather than through the router: the router's retry
// runs the whole handler again, provider call included, and e-mail has no
// idempotency key to make the second call harmless. The transaction is
// all or nothing, so trying it again is safe.
func (d *Dispatcher) recordAfterSend(ctx context.Context, msgID string, j job, started time.Time, res sendResult) error {
	backoff := 50 * time.Millisecond
	var err error
	for attempt := 1; ; attempt++ {
		err = d.record(ctx, msgID, j, started, res)
		if err == nil || msgerr.IsPermanent(err) || attempt == recordAttempts {
			return err
		}
		d.logger.WarnContext(ctx, "delivery: recording the attempt failed; trying again", "delivery_id", j.delivery.ID,
			"attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// claimItem is one command's claim: its input, and what its transaction
// found.
type claimItem struct {
	cmd     events.SendNotification
	msgID   string // the message's id, for the inbox (in-app only)
	j       job
	proceed bool
	tally   tally
}

// claim re-checks the delivery and marks it sending, in a short
// transaction shared with the other commands in hand. proceed=false means
// there is nothing to send now (already done, stale command, suppressed,
// or not due yet).
func (d *Dispatcher) claim(ctx context.Context, cmd events.SendNotification) (job, bool, error) {
	it := &claimItem{cmd: cmd}
	if err := d.claims.Do(ctx, it); err != nil {
		return job{}, false, err
	}
	d.count(it.tally)
	return it.j, it.proceed, nil
}

// claimBatch claims items in one transaction: it reads what they need in
// four statements, decides each, and claims those to send in one more.
// Items go in delivery id order (the newest attempt first), so that two
// replicas' batches take their row locks in the same order.
func (d *Dispatcher) claimBatch(ctx context.Context, items []*claimItem) error {
	d.batches.WithLabelValues("claim").Observe(float64(len(items)))
	return d.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return d.claimTx(ctx, store.NewQueries(tx), items)
	})
}

// claimTx is claimBatch's work in its transaction.
func (d *Dispatcher) claimTx(ctx context.Context, q *store.Queries, items []*claimItem) error {
	slices.SortStableFunc(items, func(a, b *claimItem) int {
		return cmp.Or(strings.Compare(a.cmd.DeliveryID, b.cmd.DeliveryID), cmp.Compare(b.cmd.Attempt, a.cmd.Attempt))
	})
	known, err := d.prefetch(ctx, q, items)
	if err != nil {
		return err
	}
	now := d.now().UTC()
	toClaim := make(map[string]int, len(items))
	decided := make(map[string]bool, len(items))
	for _, it := range items {
		// A batch that failed is run again one item at a time: each
		// run starts from nothing.
		it.j, it.proceed, it.tally = job{}, false, nil
		id := it.cmd.DeliveryID
		if decided[id] {
			// Another command of this delivery, a copy or an older
			// attempt, came in the same batch: the first one decides.
			continue
		}
		claim, err := d.claimIn(ctx, q, known, it, now)
		if err != nil {
			return fmt.Errorf("claim delivery %s: %w", id, err)
		}
		if claim {
			toClaim[id] = it.cmd.Attempt
		}
		decided[id] = claim || it.j.cmd.DeliveryID != "" // past the staleness check
	}
	claimed, err := q.DeliveryClaimMany(ctx, &store.DeliveryClaimManyParams{Attempts: toClaim, Now: now})
	if err != nil {
		return err
	}
	for _, it := range items {
		_, want := toClaim[it.cmd.DeliveryID]
		it.proceed = want && slices.Contains(claimed, it.cmd.DeliveryID) && it.j.cmd.DeliveryID != ""
	}
	return nil
}

// deliverInApp delivers an in-app command in one transaction, shared with
// the other in-app commands in hand: there is no provider to call between
// the claim and the record, so one commit does both.
func (d *Dispatcher) deliverInApp(ctx context.Context, msgID string, cmd events.SendNotification) error {
	it := &claimItem{cmd: cmd, msgID: msgID}
	if err := d.inApps.Do(ctx, it); err != nil {
		return err
	}
	d.count(it.tally)
	return nil
}

// inAppBatch claims items, then records as delivered, with their inbox
// rows, those it claimed. A command that was not claimed (stale,
// suppressed, deferred) gets no inbox row, as in claimBatch: the
// scheduler's command of a deferred delivery has the same message id.
func (d *Dispatcher) inAppBatch(ctx context.Context, items []*claimItem) error {
	d.batches.WithLabelValues("in_app").Observe(float64(len(items)))
	return d.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		q := store.NewQueries(tx)
		if err := d.claimTx(ctx, q, items); err != nil {
			return err
		}
		var sending []*claimItem
		var ids []string
		for _, it := range items {
			if it.proceed {
				sending = append(sending, it)
				ids = append(ids, it.msgID)
			}
		}
		fresh, err := d.inbox.Record(ctx, tx, d.opts.ConsumerName, ids)
		if err != nil {
			return err
		}
		now := d.now().UTC()
		attempts := make([]store.DeliveryAttempt, 0, len(sending))
		var done []*claimItem
		var records []*recordItem // records[i] is done[i]'s
		for i, it := range sending {
			if !fresh[i] {
				// Recorded already: its claim found it final, so this
				// cannot happen unless by hand; change nothing more.
				it.proceed = false
				continue
			}
			j := it.j
			if j.delivery.Channel != domain.ChannelInApp {
				// Never a provider call inside a transaction.
				return msgerr.Permanentf("send-notification: /channel: in_app, but delivery %s is on %s", it.cmd.DeliveryID, j.delivery.Channel)
			}
			rec := &recordItem{msgID: it.msgID, j: j, started: now, res: d.senders.send(ctx, j)} // in-app: no call, the outcome only
			attempts = append(attempts, d.attemptOf(rec, now, "", ""))
			done = append(done, it)
			records = append(records, rec)
		}
		if len(done) == 0 {
			return nil
		}
		// One doctor's events in the order of their notifications.
		ordered := slices.Clone(records)
		slices.SortStableFunc(ordered, func(a, b *recordItem) int {
			return cmp.Or(strings.Compare(a.j.doctor.ID, b.j.doctor.ID), cmp.Compare(a.j.notification.Seq, b.j.notification.Seq))
		})
		msgs := make([]*message.Message, 0, len(ordered))
		for _, rec := range ordered {
			msg, err := d.inAppMessage(rec.j)
			if err != nil {
				return err
			}
			msgs = append(msgs, msg)
		}
		if err := d.outbox.Publish(ctx, tx, d.opts.InAppTopic, msgs...); err != nil {
			return err
		}
		if err := d.finishSent(ctx, q, records); err != nil {
			return err
		}
		for i, rec := range records {
			done[i].tally = append(done[i].tally, rec.tally...)
		}
		return q.DeliveryAttemptInsertMany(ctx, attempts)
	})
}

// claimReads is what a claim batch read: its deliveries, their
// notifications, doctors and preferences, by id.
type claimReads struct {
	deliveries    map[string]store.Delivery
	notifications map[string]store.Notification
	doctors       map[string]domain.Doctor
	prefs         map[string]domain.Preferences
}

func (d *Dispatcher) prefetch(ctx context.Context, q *store.Queries, items []*claimItem) (claimReads, error) {
	r := claimReads{}
	ids := make([]string, 0, len(items))
	for _, it := range items {
		ids = append(ids, it.cmd.DeliveryID)
	}
	dls, err := q.DeliveryListByIDs(ctx, ids)
	if err != nil {
		return r, err
	}
	r.deliveries = make(map[string]store.Delivery, len(dls))
	var nids []string
	for _, dl := range dls {
		r.deliveries[dl.ID] = dl
		nids = append(nids, dl.NotificationID)
	}
	nts, err := q.NotificationListByIDs(ctx, nids)
	if err != nil {
		return r, err
	}
	r.notifications = make(map[string]store.Notification, len(nts))
	var dids []string
	for _, nt := range nts {
		r.notifications[nt.ID] = nt
		dids = append(dids, nt.DoctorID)
	}
	docs, err := q.DoctorListByIDs(ctx, dids)
	if err != nil {
		return r, err
	}
	r.doctors = make(map[string]domain.Doctor, len(docs))
	for _, doc := range docs {
		r.doctors[doc.ID] = doc
	}
	if r.prefs, err = q.PreferencesListByDoctors(ctx, dids); err != nil {
		return r, err
	}
	return r, nil
}

// claimIn decides one command with what its batch read: whether its
// delivery is to be claimed (claim), or it is stale, suppressed, deferred
// or waits, which claimIn records in q itself.
func (d *Dispatcher) claimIn(ctx context.Context, q *store.Queries, known claimReads, it *claimItem, now time.Time) (claim bool, err error) {
	cmd := it.cmd
	dl, ok := known.deliveries[cmd.DeliveryID]
	if !ok {
		return false, msgerr.Permanentf("send-notification: /delivery_id: no such delivery")
	}
	j := job{delivery: dl}
	st := dl.Status
	// A command older than the delivery's current attempt, or for an
	// attempt that already ended, changes nothing. A command for the
	// attempt in flight (status sending) is a redelivery after a crash
	// between the provider call and the commit: send again, with the
	// same idempotency key, so the provider does not bill it twice.
	if Final(st) || cmd.Attempt < dl.Attempt ||
		(cmd.Attempt == dl.Attempt && st != domain.DeliverySending) {
		return false, nil
	}
	if j.notification, ok = known.notifications[dl.NotificationID]; !ok {
		return false, fmt.Errorf("notification %s: %w", dl.NotificationID, store.ErrNotFound)
	}
	if j.doctor, ok = known.doctors[j.notification.DoctorID]; !ok {
		return false, fmt.Errorf("doctor %s: %w", j.notification.DoctorID, store.ErrNotFound)
	}
	if j.prefs, ok = known.prefs[j.doctor.ID]; !ok {
		j.prefs = domain.DefaultPreferences()
	}
	// Only push and webhook deliveries go to devices or endpoints; the
	// other channels need not read them on every claim.
	if ch := dl.Channel; ch == domain.ChannelPush || ch == domain.ChannelWebhook {
		if j.targets, err = LoadTargets(ctx, q, j.doctor.ID, ch); err != nil {
			return false, err
		}
	}
	j.cmd = cmd
	it.j = j

	if code := d.suppression(j, now); code != "" {
		return false, d.finish(ctx, q, &it.tally, dl, domain.DeliverySuppressed, code, "")
	}
	due := dl.SendAt
	if cmd.SendAt.After(due) {
		due = cmd.SendAt
	}
	if due.After(now) {
		// Not yet (quiet hours, or an early retry): the scheduler
		// publishes this attempt again when it is due.
		return false, q.DeliveryDefer(ctx, &store.DeliveryDeferParams{ID: dl.ID, Due: due, Now: now})
	}
	// The per-doctor SMS cap protects doctors from floods: an SMS over
	// it waits for the next slot without using up an attempt. A
	// critical result is exactly what must not wait behind it.
	if wait, capped := d.smsCapped(j); capped {
		return false, q.DeliveryWait(ctx, &store.DeliveryWaitParams{ID: dl.ID, Next: now.Add(wait),
			ReasonCode: ReasonSMSCap, StatusReason: ReasonMessage(ReasonSMSCap), Now: now})
	}
	return true, nil
}

// smsCapped takes an SMS slot of the doctor, or says how long to wait.
func (d *Dispatcher) smsCapped(j job) (time.Duration, bool) {
	if j.delivery.Channel != domain.ChannelSMS || d.senders.SMSPerDoctor == nil || j.notification.Priority == domain.PriorityCritical {
		return 0, false
	}
	// A redelivered command of the attempt in flight already has its slot.
	if j.delivery.Status == domain.DeliverySending {
		return 0, false
	}
	ok, wait := d.senders.SMSPerDoctor.Take(j.doctor.ID)
	return max(wait, time.Second), !ok
}

// suppression is the reason code of why a delivery must not go out, or "".
func (d *Dispatcher) suppression(j job, now time.Time) string {
	switch {
	case !j.doctor.Active:
		return ReasonDoctorInactive
	case j.notification.State == domain.StateRetracted:
		return ReasonRetracted
	case j.notification.State == domain.StateSuperseded:
		return ReasonSuperseded
	case j.notification.ExpiresAt != nil && j.notification.ExpiresAt.Before(now):
		return ReasonExpired
	case !slices.Contains(j.prefs.ChannelsFor(j.notification.Category), j.delivery.Channel) && !j.isFallback():
		return ReasonOptedOut
	}
	return ""
}

// isFallback: a fallback delivery of a critical notification is sent on a
// channel the doctor's fallback order names, even if the category does not.
func (j job) isFallback() bool {
	return j.notification.Priority == domain.PriorityCritical && slices.Contains(j.prefs.FallbackOrder, j.delivery.Channel)
}

// recordItem is one attempt's outcome to store.
type recordItem struct {
	msgID   string
	j       job
	started time.Time
	res     sendResult
	tally   tally
}

// record stores the attempt's outcome, and the inbox row of this command,
// in one transaction shared with the other attempts in hand.
func (d *Dispatcher) record(ctx context.Context, msgID string, j job, started time.Time, res sendResult) error {
	it := &recordItem{msgID: msgID, j: j, started: started, res: res}
	if err := d.records.Do(ctx, it); err != nil {
		return err
	}
	d.count(it.tally)
	return nil
}

// recordBatch records items and their inbox rows in one transaction; a
// command already in the inbox changes nothing. Items go in delivery id
// order, so that two replicas take their row locks in the same order.
func (d *Dispatcher) recordBatch(ctx context.Context, items []*recordItem) error {
	slices.SortFunc(items, func(a, b *recordItem) int {
		return cmp.Or(strings.Compare(a.j.delivery.ID, b.j.delivery.ID), strings.Compare(a.msgID, b.msgID))
	})
	d.batches.WithLabelValues("record").Observe(float64(len(items)))
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.msgID
		it.tally = nil
	}
	_, err := d.inbox.ProcessBatch(ctx, d.opts.ConsumerName, ids, func(ctx context.Context, tx bun.Tx, fresh []bool) error {
		q := store.NewQueries(tx)
		attempts := make([]store.DeliveryAttempt, 0, len(items))
		var sent []*recordItem
		for i, it := range items {
			if !fresh[i] {
				continue
			}
			if it.res.err == nil && it.j.delivery.Channel != domain.ChannelInApp {
				// Finished below with the batch's other successes.
				if err := d.disableTargets(ctx, q, it.res); err != nil {
					return err
				}
				sent = append(sent, it)
				attempts = append(attempts, d.attemptOf(it, d.now().UTC(), "", ""))
				continue
			}
			a, err := d.recordIn(ctx, tx, q, it)
			if err != nil {
				return fmt.Errorf("record delivery %s: %w", it.j.delivery.ID, err)
			}
			attempts = append(attempts, a)
		}
		if err := d.finishSent(ctx, q, sent); err != nil {
			return err
		}
		return q.DeliveryAttemptInsertMany(ctx, attempts)
	})
	return err
}

// finishSent moves the deliveries the providers took to their success
// status (delivered for a webhook's 2xx, else sent), one statement per
// status and provider.
func (d *Dispatcher) finishSent(ctx context.Context, q *store.Queries, items []*recordItem) error {
	type group struct{ status, provider string }
	groups := map[group]map[string]string{}
	byID := make(map[string]*recordItem, len(items))
	for _, it := range items {
		status := domain.DeliverySent
		if ch := it.j.delivery.Channel; ch == domain.ChannelInApp || ch == domain.ChannelWebhook {
			// In-app is delivered once it is committed and broadcast; a
			// webhook 2xx is the receiver's confirmation.
			status = domain.DeliveryDelivered
		}
		g := group{status, it.res.out.Provider}
		if groups[g] == nil {
			groups[g] = map[string]string{}
		}
		groups[g][it.j.delivery.ID] = it.res.out.ProviderMessageID
		byID[it.j.delivery.ID] = it
	}
	now := d.now().UTC()
	for g, ids := range groups {
		moved, err := q.DeliveryFinishSentMany(ctx, &store.DeliveryFinishSentManyParams{Status: g.status, From: predecessors(g.status),
			Provider: g.provider, ProviderMessageIDs: ids, Now: now})
		if err != nil {
			return err
		}
		for id, providerID := range ids {
			it := byID[id]
			if slices.Contains(moved, id) {
				it.tally.add(it.j.delivery.Channel, g.status)
				continue
			}
			// Already past it (a provider's callback came first): the
			// provider's message id is still worth keeping.
			if err := q.DeliverySetProvider(ctx, &store.DeliverySetProviderParams{ID: id, Provider: g.provider, ProviderMessageID: providerID}); err != nil {
				return err
			}
		}
	}
	return nil
}

// recordIn stores one attempt's outcome in tx, and returns its attempt
// row, which its batch inserts with the others'.
func (d *Dispatcher) recordIn(ctx context.Context, tx bun.Tx, q *store.Queries, it *recordItem) (store.DeliveryAttempt, error) {
	finished := d.now().UTC()
	sendErr := it.res.err
	if err := d.disableTargets(ctx, q, it.res); err != nil {
		return store.DeliveryAttempt{}, err
	}
	code, providerCode := "", ""
	if sendErr != nil {
		code = Classify(sendErr)
		if f, ok := channels.AsFailure(sendErr); ok {
			providerCode = f.Code
		}
	}
	return d.attemptOf(it, finished, code, providerCode), d.recordStatus(ctx, tx, q, it, finished, code, providerCode)
}

// attemptOf is the attempt row of it, finished at finished with reason
// code code ("" for a success).
func (d *Dispatcher) attemptOf(it *recordItem, finished time.Time, code, providerCode string) store.DeliveryAttempt {
	outcome := "success"
	if err := it.res.err; err != nil {
		outcome = "transient"
		if channels.IsPermanent(err) {
			outcome = "permanent"
		}
	}
	out := it.res.out
	return store.DeliveryAttempt{DeliveryID: it.j.delivery.ID, Attempt: it.j.cmd.Attempt,
		Provider: out.Provider, ProviderMessageID: out.ProviderMessageID, Outcome: outcome, ReasonCode: code,
		Error: reasonText(code, providerCode), StartedAt: it.started, FinishedAt: finished}
}

// recordStatus moves the delivery on after its attempt: done, failed
// (with the fallback of a critical notification), or queued for a retry.
func (d *Dispatcher) recordStatus(ctx context.Context, tx bun.Tx, q *store.Queries, it *recordItem, finished time.Time, code, providerCode string) error {
	j, sendErr := it.j, it.res.err
	switch {
	case sendErr == nil:
		// recordBatch finishes successes together; in-app ones are
		// recorded in their claim's transaction (inAppBatch).
		return d.finishSent(ctx, q, []*recordItem{it})

	case channels.IsPermanent(sendErr):
		if err := d.finish(ctx, q, &it.tally, j.delivery, domain.DeliveryFailed, code, providerCode); err != nil {
			return err
		}
		return d.fallback(ctx, tx, j)

	case j.cmd.Attempt >= d.opts.MaxAttempts:
		// Undelivered says the retries ran out; the code says why
		// the last one failed.
		if err := d.finish(ctx, q, &it.tally, j.delivery, domain.DeliveryUndelivered, code, providerCode); err != nil {
			return err
		}
		return d.fallback(ctx, tx, j)

	default:
		next := finished.Add(d.backoff(j.cmd.Attempt, sendErr))
		if err := q.DeliveryScheduleRetry(ctx, &store.DeliveryScheduleRetryParams{ID: j.delivery.ID, ReasonCode: code,
			StatusReason: reasonText(code, providerCode), Next: next, Now: finished}); err != nil {
			return err
		}
		it.tally.add(j.delivery.Channel, "retry")
		return nil
	}
}

// finish moves a delivery to status, monotonically, with the reason code
// and the provider's code, and tallies the move.
func (d *Dispatcher) finish(ctx context.Context, q *store.Queries, t *tally, dl store.Delivery, status, code, providerCode string) error {
	moved, err := advance(ctx, q, dl.ID, status, code, providerCode, d.now().UTC())
	if err != nil {
		return err
	}
	if moved {
		t.add(dl.Channel, status)
	}
	return nil
}

// Advance moves delivery id to status if that is forward (see CanMove),
// with reason code code ("" for none); it reports whether it moved.
func Advance(ctx context.Context, q *store.Queries, id, status, code string, now time.Time) (bool, error) {
	return advance(ctx, q, id, status, code, "", now)
}

func advance(ctx context.Context, q *store.Queries, id, status, code, providerCode string, now time.Time) (bool, error) {
	from := predecessors(status)
	if len(from) == 0 {
		return false, nil
	}
	return q.DeliveryAdvance(ctx, &store.DeliveryAdvanceParams{ID: id, Status: status, From: from,
		ReasonCode: code, StatusReason: reasonText(code, providerCode), Now: now})
}

// backoff is the delay before the next attempt: exponential with jitter,
// capped, and never shorter than the provider's Retry-After.
func (d *Dispatcher) backoff(attempt int, err error) time.Duration {
	b := d.opts.InitialBackoff << min(attempt-1, 20)
	if b > d.opts.MaxBackoff || b <= 0 {
		b = d.opts.MaxBackoff
	}
	b = time.Duration(float64(b) * (0.8 + 0.4*rand.Float64()))
	if f, ok := channels.AsFailure(err); ok && f.RetryAfter > b {
		b = min(f.RetryAfter, time.Hour)
	}
	return b
}

// disableTargets stops using what the providers said is gone: push
// tokens FCM no longer knows, webhook endpoints that answered 410.
func (d *Dispatcher) disableTargets(ctx context.Context, q *store.Queries, res sendResult) error {
	now := d.now().UTC()
	for _, tok := range res.deadTokens {
		if err := q.TargetDisableDevice(ctx, &store.TargetDisableDeviceParams{Token: tok, Reason: "unregistered by FCM", At: now}); err != nil {
			return err
		}
	}
	for _, id := range res.deadEndpoints {
		if err := q.TargetDisableWebhookEndpoint(ctx, &store.TargetDisableWebhookEndpointParams{ID: id, Reason: "410 Gone", At: now}); err != nil {
			return err
		}
	}
	return nil
}

// fallback tries a critical notification on the next channel of the
// doctor's fallback order that has not been tried yet.
func (d *Dispatcher) fallback(ctx context.Context, tx bun.Tx, j job) error {
	_, err := Fallback(ctx, tx, d.outbox, d.opts.SendTopic, j.notification.ID, string(j.delivery.Channel), d.now().UTC())
	return err
}

// Fallback queues a critical notification on the next channel of the
// doctor's fallback order that has no delivery yet, after the delivery on
// failedChannel failed for good. It reports whether it queued one.
func Fallback(ctx context.Context, tx bun.Tx, ob *outbox.Publisher, topic, notificationID, failedChannel string, now time.Time) (bool, error) {
	q := store.NewQueries(tx)
	nt, err := q.NotificationGet(ctx, notificationID)
	if err != nil {
		return false, fmt.Errorf("fallback: %w", err)
	}
	n := *nt
	if n.Priority != domain.PriorityCritical || n.State != domain.StateActive {
		return false, nil
	}
	prefs, err := notify.PreferencesOf(ctx, tx, n.DoctorID)
	if err != nil {
		return false, err
	}
	tried, err := q.DeliveryListChannels(ctx, n.ID)
	if err != nil {
		return false, fmt.Errorf("fallback: %w", err)
	}
	for _, ch := range prefs.FallbackOrder {
		if slices.Contains(tried, string(ch)) {
			continue
		}
		dl := &store.Delivery{
			ID: notify.DeliveryID(n.ID, ch), NotificationID: n.ID, Channel: ch,
			Status: domain.DeliveryQueued, ReasonCode: ReasonFallback, StatusReason: reasonText(ReasonFallback, failedChannel),
			SendAt: now, CreatedAt: now, UpdatedAt: now,
		}
		if err := q.DeliveryInsert(ctx, dl); err != nil {
			return false, fmt.Errorf("fallback: %w", err)
		}
		return true, PublishCommand(ctx, tx, ob, topic, n, n.DoctorID, dl, 1, now)
	}
	return false, nil
}

// PublishCommand queues one send-notification command. The first attempt's
// message id is the delivery id; a retry's is the delivery id and attempt,
// so each attempt is its own message for the inbox.
func PublishCommand(ctx context.Context, tx bun.Tx, ob *outbox.Publisher, topic string, n store.Notification, doctorID string, dl *store.Delivery, attempt int, now time.Time) error {
	cmd := events.SendNotification{
		DeliveryID: dl.ID, NotificationID: n.ID, DoctorID: doctorID, Channel: string(dl.Channel),
		Category: string(n.Category), Priority: string(n.Priority), Type: n.Type, SendAt: dl.SendAt, Attempt: attempt,
	}
	payload, err := cmd.Encode()
	if err != nil {
		return fmt.Errorf("encode send-notification: %w", err)
	}
	id := dl.ID
	if attempt > 1 {
		id = fmt.Sprintf("%s#%d", dl.ID, attempt)
	}
	msg := message.NewMessage(id, payload)
	for k, v := range events.CloudEventMetadata(id, events.TypeSendNotification, "rfd-notify", now) {
		msg.Metadata.Set(k, v)
	}
	msg.Metadata.Set(outbox.PartitionKeyKey, doctorID)
	return ob.Publish(ctx, tx, topic, msg)
}

// InAppEvent is what the in-app broadcast carries: opaque ids only. Each
// API replica reads it and tells the doctor's open portal sessions to fetch
// the notification.
type InAppEvent struct {
	DoctorID       string    `json:"doctor_id"`
	NotificationID string    `json:"notification_id"`
	Seq            int64     `json:"seq"`
	Event          string    `json:"event"`
	At             time.Time `json:"at"`
}

// inAppMessage is the in-app broadcast of j's notification.
func (d *Dispatcher) inAppMessage(j job) (*message.Message, error) {
	body, err := json.Marshal(InAppEvent{DoctorID: j.doctor.ID, NotificationID: j.notification.ID, Seq: j.notification.Seq, Event: "notification", At: d.now().UTC()})
	if err != nil {
		return nil, fmt.Errorf("encode in-app event: %w", err)
	}
	msg := message.NewMessage(j.delivery.ID, body)
	msg.Metadata.Set(outbox.PartitionKeyKey, j.doctor.ID)
	return msg, nil
}
