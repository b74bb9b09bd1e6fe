// Package notify turns what happened (a result, an order transition, a
// login) into notifications: it finds the recipients (the doctors named on
// the event and whoever covers for them), applies their preferences and
// quiet hours, stores one notification per recipient under a deterministic
// dedup key, and queues one send-notification command per notification and
// channel through the outbox — all inside the caller's transaction.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/outbox"
)

// Intent is a notification to be made, before its recipients are known.
type Intent struct {
	// Key identifies the source and its version, e.g.
	// "checkup/CHK-1/result/2"; with the recipient it is the dedup key, so
	// the same source never notifies the same doctor twice.
	Key           string          `json:"key"`
	SourceEventID string          `json:"source_event_id"`
	Type          string          `json:"type"`
	Category      domain.Category `json:"category"`
	Priority      domain.Priority `json:"priority"`
	// Detail is the template data; its patient fields reach only the
	// authenticated in-app view.
	Detail        templates.Data `json:"detail"`
	CheckupID     string         `json:"checkup_id,omitempty"`
	ResultVersion int            `json:"result_version,omitempty"`
	OrderID       string         `json:"order_id,omitempty"`
	ExpiresAt     *time.Time     `json:"expires_at,omitempty"`
	// Channels, when set, are the channels the notification goes out on
	// instead of the doctor's choice for the category (a digest is email).
	Channels []domain.Channel `json:"channels,omitempty"`
}

// Notifier creates notifications.
type Notifier struct {
	outbox    *outbox.Publisher
	sendTopic string
	portalURL string
	now       func() time.Time
}

// New returns a notifier publishing send-notification commands to
// sendTopic. portalURL is the base of the links in notifications.
func New(ob *outbox.Publisher, sendTopic, portalURL string, now func() time.Time) *Notifier {
	if now == nil {
		now = time.Now
	}
	return &Notifier{outbox: ob, sendTopic: sendTopic, portalURL: portalURL, now: now}
}

// Outcome says what Notify did.
type Outcome struct {
	// Created are the ids of the notifications made now.
	Created []string
	// Pending are the doctors (external user ids) the service does not know
	// yet; their intents wait for their user-created event.
	Pending []string
}

// Notify makes the intent's notifications for the doctors named by their
// external user ids, plus copies for the doctors covering for them today.
func (n *Notifier) Notify(ctx context.Context, tx bun.Tx, in Intent, doctorExternalIDs []string) (Outcome, error) {
	u := NewUnit(tx, store.NewBatch(tx))
	out, err := n.Add(ctx, u, in, doctorExternalIDs)
	if err != nil {
		return out, err
	}
	return out, n.Flush(ctx, u)
}

// Unit is a transaction's pending notification work: SQL writes gathered
// in a batch, which may hold the caller's own writes too, and the
// send-notification commands, published to the outbox in one insert by
// Flush. It also holds the recipients Prefetch read.
type Unit struct {
	tx    bun.Tx
	q     *store.Queries
	batch *store.Batch
	msgs  []*message.Message
	known map[string]*recipient // by Want.key; nil: no such doctor
	// seqs are the doctors whose notification sequence the batch takes,
	// which locks their rows (PostgreSQL only).
	seqs map[string]bool
}

// NewUnit starts a unit of work on tx whose writes go to b.
func NewUnit(tx bun.Tx, b *store.Batch) *Unit {
	return &Unit{tx: tx, q: store.NewQueries(tx), batch: b}
}

// Add makes the intent's notifications for the doctors named by their
// external user ids, plus copies for the doctors covering for them today,
// in u; Flush writes them.
func (n *Notifier) Add(ctx context.Context, u *Unit, in Intent, doctorExternalIDs []string) (Outcome, error) {
	var out Outcome
	now := n.now().UTC()
	seen := map[string]bool{}
	for _, ext := range doctorExternalIDs {
		if seen[ext] {
			continue
		}
		seen[ext] = true
		r, found, err := u.recipient(ctx, in.Key, ext, now)
		if err != nil {
			return out, err
		}
		if !found {
			if err := n.keepPending(ctx, u.batch, in, ext); err != nil {
				return out, err
			}
			out.Pending = append(out.Pending, ext)
			continue
		}
		if !r.notified {
			id, err := n.add(ctx, u, in, r.doc, r.prefs, "")
			if err != nil {
				return out, err
			}
			u.known[Want{IntentKey: in.Key, ExternalID: ext}.key()].notified = true
			out.Created = append(out.Created, id)
		}
		if r.hasCover {
			created, err := n.notifyCovering(ctx, u, in, r.doc, now)
			if err != nil {
				return out, err
			}
			out.Created = append(out.Created, created...)
		}
	}
	return out, nil
}

// FlushWrites sends u's batch, its commands staying for Flush: a caller
// whose next reads must see the writes so far calls it.
func (u *Unit) FlushWrites(ctx context.Context) error {
	// The row locks the sequence updates in the batch would take are
	// taken first, in id order: transactions that notify several doctors
	// (a batch of checkup events, an order event naming two doctors,
	// copies for covering doctors) then lock them in one order and cannot
	// deadlock, which PostgreSQL would only break after deadlock_timeout.
	if len(u.seqs) > 1 {
		if err := u.batch.NotificationLockDoctors(ctx, slices.Sorted(maps.Keys(u.seqs))); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
	}
	clear(u.seqs)
	if err := u.batch.Flush(ctx); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// Flush sends u's batch and publishes its commands.
func (n *Notifier) Flush(ctx context.Context, u *Unit) error {
	if err := u.FlushWrites(ctx); err != nil {
		return err
	}
	if len(u.msgs) == 0 {
		return nil
	}
	err := n.outbox.Publish(ctx, u.tx, n.sendTopic, u.msgs...)
	u.msgs = nil
	return err
}

// recipient is a doctor as notifying them needs: the profile, the
// preferences, and whether a closer look is needed (an active delegation;
// an earlier notification from the same source).
type recipient struct {
	doc      domain.Doctor
	prefs    domain.Preferences
	hasCover bool
	notified bool
}

// Want names a recipient an intent will be added for: the intent's key
// and the doctor's external user id.
type Want struct {
	IntentKey  string
	ExternalID string
}

func (w Want) key() string { return w.IntentKey + "\x00" + w.ExternalID }

// Prefetch reads, in one query, the recipients that Add will be asked for,
// so that a batch of intents costs one read instead of one per recipient.
// What it reads stays valid for the unit's transaction as long as no two
// intents of the unit share a key (each intent's own notifications are
// what "notified" looks for).
func (n *Notifier) Prefetch(ctx context.Context, u *Unit, wants []Want) error {
	if len(wants) == 0 {
		return nil
	}
	return u.read(ctx, wants, n.now().UTC())
}

// recipient returns the recipient for the intent key and doctor, read by
// Prefetch or now.
func (u *Unit) recipient(ctx context.Context, intentKey, externalID string, now time.Time) (recipient, bool, error) {
	w := Want{IntentKey: intentKey, ExternalID: externalID}
	r, ok := u.known[w.key()]
	if !ok {
		if err := u.read(ctx, []Want{w}, now); err != nil {
			return recipient{}, false, err
		}
		r = u.known[w.key()]
	}
	if r == nil {
		return recipient{}, false, nil
	}
	return *r, true, nil
}

// read reads the recipients of wants into u.known. A doctor it does not
// find is read again under their parking lock (see LockDoctors), so that
// "not found" is only ever concluded while no user-created transaction can
// be between registering that doctor and releasing their intents: the
// intent parked on it is then either seen by the release or not needed.
func (u *Unit) read(ctx context.Context, wants []Want, now time.Time) error {
	if err := u.readOnce(ctx, wants, now); err != nil {
		return err
	}
	if !u.batch.Postgres() {
		return nil // SQLite transactions run one at a time: nothing to race
	}
	var missing []Want
	for _, w := range wants {
		if u.known[w.key()] == nil {
			missing = append(missing, w)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	exts := make([]string, len(missing))
	for i, w := range missing {
		exts[i] = w.ExternalID
	}
	if err := u.q.ParkingLock(ctx, exts); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	// A new statement, so a new snapshot: it sees a doctor whose
	// user-created transaction committed while this one waited.
	return u.readOnce(ctx, missing, now)
}

// readOnce reads the recipients of wants into u.known in one query.
func (u *Unit) readOnce(ctx context.Context, wants []Want, now time.Time) error {
	if u.known == nil {
		u.known = make(map[string]*recipient, len(wants))
	}
	params := &store.NotificationListRecipientsParams{Wants: make([]store.NotificationWant, len(wants)), Now: now}
	intentOf := make(map[string]string, len(wants)) // dedup key prefix → intent key
	for i, w := range wants {
		prefix := DedupKey(Intent{Key: w.IntentKey}, "", "")
		intentOf[prefix] = w.IntentKey
		params.Wants[i] = store.NotificationWant{ExternalID: w.ExternalID, DedupPrefix: prefix}
		u.known[w.key()] = nil // unless a row says otherwise
	}
	rows, err := u.q.NotificationListRecipients(ctx, params)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	for i := range rows {
		r, err := recipientOf(&rows[i])
		if err != nil {
			return err
		}
		u.known[Want{IntentKey: intentOf[rows[i].DedupPrefix], ExternalID: rows[i].ExternalID}.key()] = r
	}
	return nil
}

// recipientOf is the recipient a row of the recipient read describes.
func recipientOf(row *store.NotificationRecipient) (*recipient, error) {
	r := &recipient{doc: row.Doctor, hasCover: row.HasCover, notified: row.Notified, prefs: domain.DefaultPreferences()}
	if !row.Channels.Valid {
		return r, nil
	}
	d := &r.doc
	prefs := store.PreferencesRow{DoctorID: d.ID, QuietStart: row.QuietStart.String, QuietEnd: row.QuietEnd.String, Digest: row.Digest.String}
	if err := json.Unmarshal([]byte(row.Channels.String), &prefs.Channels); err != nil {
		return nil, fmt.Errorf("notify: preferences of doctor %s: %w", d.ID, err)
	}
	if row.Fallback.Valid && row.Fallback.String != "" {
		if err := json.Unmarshal([]byte(row.Fallback.String), &prefs.FallbackOrder); err != nil {
			return nil, fmt.Errorf("notify: preferences of doctor %s: %w", d.ID, err)
		}
	}
	r.prefs = prefs.Preferences()
	return r, nil
}

// notifyCovering makes the copies for the doctors covering for doc at now.
func (n *Notifier) notifyCovering(ctx context.Context, w *Unit, in Intent, doc domain.Doctor, now time.Time) ([]string, error) {
	covering, err := CoveringDoctors(ctx, w.tx, doc.ID, now)
	if err != nil {
		return nil, err
	}
	var created []string
	for _, cov := range covering {
		id, ok, err := n.notifyDoctor(ctx, w, in, cov, doc.ID)
		if err != nil {
			return nil, err
		}
		if ok {
			created = append(created, id)
		}
	}
	return created, nil
}

// DedupKey is the notification's dedup key: source, version and recipient
// (and, for a covering doctor's copy, whom it covers for).
func DedupKey(in Intent, doctorID, onBehalfOf string) string {
	k := in.Key + "|to:" + doctorID
	if onBehalfOf != "" {
		k += "|for:" + onBehalfOf
	}
	return k
}

// idNamespace makes notification and delivery ids deterministic: the same
// dedup key always names the same notification.
var idNamespace = uuid.MustParse("5d0f1f0e-8f0c-4d35-9a54-2c1b7a4be3f1")

// NotificationID is the id of the notification with the given dedup key.
func NotificationID(dedupKey string) string {
	return uuid.NewSHA1(idNamespace, []byte("notification:"+dedupKey)).String()
}

// DeliveryID is the id of a notification's delivery on a channel.
func DeliveryID(notificationID string, ch domain.Channel) string {
	return uuid.NewSHA1(idNamespace, []byte("delivery:"+notificationID+":"+string(ch))).String()
}

// NotifyDoctor makes the notification of in for doc (onBehalfOf: the doctor
// doc covers for, or ""), with doc's own preferences and without copies for
// covering doctors. It reports created=false when that notification
// already exists.
func (n *Notifier) NotifyDoctor(ctx context.Context, tx bun.Tx, in Intent, doc domain.Doctor, onBehalfOf string) (string, bool, error) {
	w := NewUnit(tx, store.NewBatch(tx))
	id, created, err := n.notifyDoctor(ctx, w, in, doc, onBehalfOf)
	if err != nil {
		return "", false, err
	}
	return id, created, n.Flush(ctx, w)
}

// NotifyDoctors makes the notification of in for each of docs, in tx, as
// NotifyDoctor would one by one, but with the reads made once for all of
// them and the writes sent together. It returns how many it created (a
// doctor who has the notification already gets none).
func (n *Notifier) NotifyDoctors(ctx context.Context, tx bun.Tx, in Intent, docs []domain.Doctor) (int, error) {
	w := NewUnit(tx, store.NewBatch(tx))
	keys := make([]string, len(docs))
	ids := make([]string, len(docs))
	for i, doc := range docs {
		keys[i] = DedupKey(in, doc.ID, "")
		ids[i] = doc.ID
	}
	exists, err := w.q.NotificationListExistingDedupKeys(ctx, keys)
	if err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	prefs, err := w.q.PreferencesListByDoctors(ctx, ids)
	if err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	created := 0
	for i, doc := range docs {
		if exists[keys[i]] {
			continue
		}
		exists[keys[i]] = true // a doctor listed twice gets one
		p, ok := prefs[doc.ID]
		if !ok {
			p = domain.DefaultPreferences()
		}
		if _, err := n.add(ctx, w, in, doc, p, ""); err != nil {
			return 0, err
		}
		created++
	}
	return created, n.Flush(ctx, w)
}

// notifyDoctor makes the notification of in for doc (onBehalfOf: the doctor
// doc covers for, or ""), reading what the recipient query did not. It
// reports created=false when that notification already exists.
func (n *Notifier) notifyDoctor(ctx context.Context, w *Unit, in Intent, doc domain.Doctor, onBehalfOf string) (string, bool, error) {
	key := DedupKey(in, doc.ID, onBehalfOf)
	id := NotificationID(key)
	exists, err := w.q.NotificationExistsByDedupKey(ctx, key)
	if err != nil {
		return "", false, fmt.Errorf("notify: look up %s: %w", id, err)
	}
	if exists {
		return id, false, nil
	}
	prefs, err := PreferencesOf(ctx, w.tx, doc.ID)
	if err != nil {
		return "", false, err
	}
	if _, err := n.add(ctx, w, in, doc, prefs, onBehalfOf); err != nil {
		return "", false, err
	}
	return id, true, nil
}

// add writes the notification of in for doc, its deliveries and their
// send-notification commands, to w; the caller knows it is new.
func (n *Notifier) add(ctx context.Context, w *Unit, in Intent, doc domain.Doctor, prefs domain.Preferences, onBehalfOf string) (string, error) {
	key := DedupKey(in, doc.ID, onBehalfOf)
	id := NotificationID(key)
	now := n.now().UTC()
	sendAt := now
	if !domain.BypassesQuietHours(in.Category) {
		sendAt = prefs.QuietHours.Defer(now, doc.Location())
	}

	detail := in.Detail
	detail.DoctorName = doc.Name
	detail.NotificationID = id
	detail.PortalURL = n.portalURL + "/notifications/" + id
	rendered, err := templates.Render(in.Type, string(domain.ChannelInApp), doc.Locale, detail)
	if err != nil {
		return "", fmt.Errorf("notify: render %s: %w", in.Type, err)
	}
	data, err := toMap(detail)
	if err != nil {
		return "", err
	}
	row := &store.Notification{
		ID:            id,
		DoctorID:      doc.ID,
		DedupKey:      key,
		Type:          in.Type,
		Category:      in.Category,
		Priority:      in.Priority,
		Title:         rendered.Title,
		Body:          rendered.Body,
		Data:          data,
		CheckupID:     nonEmpty(in.CheckupID),
		OrderID:       nonEmpty(in.OrderID),
		SourceEventID: in.SourceEventID,
		OnBehalfOf:    nonEmpty(onBehalfOf),
		State:         domain.StateActive,
		SendAt:        sendAt,
		ExpiresAt:     in.ExpiresAt,
		CreatedAt:     now,
	}
	if in.ResultVersion > 0 {
		v := in.ResultVersion
		row.ResultVersion = &v
	}

	// The doctor's sequence number orders their notifications for the
	// portal's stream; taking it locks the doctor's row until commit, so
	// sequence order is commit order. On PostgreSQL the insert takes it,
	// at Flush: FlushWrites locks the rows first (see there).
	if w.batch.Postgres() {
		if w.seqs == nil {
			w.seqs = map[string]bool{}
		}
		w.seqs[doc.ID] = true
	}
	if err := w.batch.NotificationInsert(ctx, row); err != nil {
		return "", fmt.Errorf("notify: %w", err)
	}

	channels := channelsOf(in, prefs)
	if len(channels) == 0 {
		return id, nil
	}
	deliveries := make([]store.Delivery, len(channels))
	for i, ch := range channels {
		deliveries[i] = store.Delivery{
			ID:             DeliveryID(id, ch),
			NotificationID: id,
			Channel:        ch,
			Status:         domain.DeliveryQueued,
			SendAt:         sendAt,
			CreatedAt:      now,
			UpdatedAt:      now,
		}
		msg, err := sendCommand(row, doc, &deliveries[i])
		if err != nil {
			return "", err
		}
		w.msgs = append(w.msgs, msg)
	}
	if err := w.batch.DeliveryInsertMany(ctx, deliveries); err != nil {
		return "", fmt.Errorf("notify: %w", err)
	}
	return id, nil
}

// channelsOf are the channels of in for a doctor with prefs. A doctor who
// takes a digest gets no email per notification for what the digest
// collects (everything but critical results and security alerts).
func channelsOf(in Intent, prefs domain.Preferences) []domain.Channel {
	if len(in.Channels) > 0 {
		return in.Channels
	}
	chs := prefs.ChannelsFor(in.Category)
	if prefs.Digest != "" && prefs.Digest != "off" && !domain.BypassesQuietHours(in.Category) {
		chs = slices.DeleteFunc(chs, func(c domain.Channel) bool { return c == domain.ChannelEmail })
	}
	return chs
}

// sendCommand is the send-notification command of delivery d. It is
// marshalled without the contract's schema check, which would cost more
// than the rest of the encoding: the struct is this module's own, and the
// tests decode what the notifier publishes with the validating decoder.
func sendCommand(nt *store.Notification, doc domain.Doctor, d *store.Delivery) (*message.Message, error) {
	cmd := events.SendNotification{
		DeliveryID:     d.ID,
		NotificationID: nt.ID,
		DoctorID:       doc.ID,
		Channel:        string(d.Channel),
		Category:       string(nt.Category),
		Priority:       string(nt.Priority),
		Type:           nt.Type,
		SendAt:         nt.SendAt,
		Attempt:        1,
	}
	payload, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("notify: encode send-notification: %w", err)
	}
	msg := message.NewMessage(d.ID, payload)
	for k, v := range events.CloudEventMetadata(d.ID, events.TypeSendNotification, "rfd-notify", nt.CreatedAt) {
		msg.Metadata.Set(k, v)
	}
	msg.Metadata.Set(outbox.PartitionKeyKey, doc.ID)
	return msg, nil
}

func (n *Notifier) keepPending(ctx context.Context, b *store.Batch, in Intent, externalID string) error {
	raw, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("notify: encode pending intent: %w", err)
	}
	if err := b.ParkingInsert(ctx, &store.ParkingInsertParams{DedupKey: in.Key + "|ext:" + externalID, ExternalID: externalID,
		Intent: string(raw), SourceEventID: in.SourceEventID, ReceivedAt: n.now().UTC()}); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// ReleasePending turns the intents waiting for the doctor with externalID
// into notifications; user-created calls it once the doctor exists. Intents
// whose result was corrected or withdrawn meanwhile are dropped.
func (n *Notifier) ReleasePending(ctx context.Context, tx bun.Tx, externalID string) (int, error) {
	// After this lock no transaction is between "doctor not found" and the
	// commit of the intent it parks (see Unit.read): the read below sees
	// every intent parked for the doctor so far, and every later one finds
	// the doctor instead.
	if err := LockDoctors(ctx, tx, []string{externalID}); err != nil {
		return 0, err
	}
	doc, found, err := DoctorByExternalID(ctx, tx, externalID)
	if err != nil || !found {
		return 0, err
	}
	w := NewUnit(tx, store.NewBatch(tx))
	rows, err := w.q.ParkingListForDoctor(ctx, externalID)
	if err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	released := 0
	for _, r := range rows {
		var in Intent
		if err := json.Unmarshal([]byte(r.Intent), &in); err != nil {
			return released, fmt.Errorf("notify: decode pending intent: %w", err)
		}
		current, err := stillCurrent(ctx, w.q, in)
		if err != nil {
			return released, err
		}
		if current {
			_, ok, err := n.notifyDoctor(ctx, w, in, doc, "")
			if err != nil {
				return released, err
			}
			if ok {
				released++
			}
			created, err := n.notifyCovering(ctx, w, in, doc, n.now().UTC())
			if err != nil {
				return released, err
			}
			released += len(created)
		}
		if err := w.batch.ParkingDelete(ctx, r.DedupKey); err != nil {
			return released, fmt.Errorf("notify: %w", err)
		}
	}
	return released, n.Flush(ctx, w)
}

// LockDoctors takes, on PostgreSQL, the transaction-scoped parking lock of
// each doctor named by external user id: the lock that orders parking an
// intent for an unknown doctor against releasing that doctor's intents.
// Both read, after taking it, what the other wrote: under READ COMMITTED
// each statement sees what committed before it started, and the lock is
// released only after its holder's commit. See store's ParkingLock. On
// SQLite, where transactions run one at a time, it does nothing.
func LockDoctors(ctx context.Context, tx bun.Tx, externalIDs []string) error {
	if err := store.NewQueries(tx).ParkingLock(ctx, externalIDs); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// stillCurrent reports whether a result intent still describes the latest,
// valid version of its checkup.
func stillCurrent(ctx context.Context, q *store.Queries, in Intent) (bool, error) {
	if in.CheckupID == "" || in.ResultVersion == 0 {
		return true, nil
	}
	latest, err := q.CheckupGetLatestResult(ctx, in.CheckupID)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("notify: %w", err)
	}
	withdrawn := latest.Status == events.ResultCancelled || latest.Status == events.ResultEnteredInError
	return latest.Version <= in.ResultVersion && !withdrawn, nil
}

// Supersede marks, in b, the active notifications of a checkup's result
// versions older than version as superseded by it; they stay visible,
// marked, and each points (superseded_by) at the notification of version
// for the same recipient and copy. It runs after version's notifications
// were added to b, so that they exist; a recipient version does not notify
// keeps superseded_by empty.
func Supersede(ctx context.Context, b *store.Batch, checkupID string, version int) error {
	if err := b.NotificationSupersede(ctx, &store.NotificationSupersedeParams{CheckupID: checkupID, Version: version,
		Reason: fmt.Sprintf("superseded by result version %d", version)}); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// Retract marks, in b, every active notification of a checkup retracted
// with reason, and drops the intents still waiting for their doctor. A
// notice that a result was withdrawn stays active: it stays true.
func Retract(ctx context.Context, b *store.Batch, checkupID, reason string) error {
	if err := b.NotificationRetract(ctx, &store.NotificationRetractParams{CheckupID: checkupID, Reason: reason}); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	if err := b.ParkingDeleteForCheckup(ctx, checkupID); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// RetractAndTell retracts a checkup's notifications as Retract does, in u,
// and tells each recipient who had an active one with in (a
// result_retracted notice): one per doctor and copy, since in's key with
// the recipient is the notice's dedup key. Doctors who were never told
// anything are not told it was withdrawn. It returns the notices made.
func (n *Notifier) RetractAndTell(ctx context.Context, u *Unit, checkupID, reason string, in Intent) ([]string, error) {
	// Read before the retraction, which on SQLite runs at once.
	// Only holders of a result notification: a withdrawal notice says a
	// result was withdrawn, which is wrong to tell of a checkup that never
	// reported one.
	holders, err := u.q.NotificationListHolders(ctx, checkupID)
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	if err := Retract(ctx, u.batch, checkupID, reason); err != nil {
		return nil, err
	}
	if len(holders) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(holders))
	for _, h := range holders {
		ids = append(ids, h.DoctorID)
	}
	docs, err := u.q.DoctorListByIDs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("notify: doctors of checkup %s: %w", checkupID, err)
	}
	byID := make(map[string]domain.Doctor, len(docs))
	for _, d := range docs {
		byID[d.ID] = d
	}
	var created []string
	now := n.now().UTC()
	covers := map[string][]domain.Doctor{} // covered doctor → who covers for them now
	for _, h := range holders {
		doc, ok := byID[h.DoctorID]
		if !ok {
			continue
		}
		if h.OnBehalfOf.Valid && h.OnBehalfOf.String != "" {
			// A copy's holder is told only while still covering: a doctor
			// who declined or whose cover ended receives nothing more for
			// the other doctor, this notice's detail included.
			covering, seen := covers[h.OnBehalfOf.String]
			if !seen {
				var err error
				if covering, err = CoveringDoctors(ctx, u.tx, h.OnBehalfOf.String, now); err != nil {
					return nil, err
				}
				covers[h.OnBehalfOf.String] = covering
			}
			if !slices.ContainsFunc(covering, func(c domain.Doctor) bool { return c.ID == doc.ID }) {
				continue
			}
		}
		id, made, err := n.notifyDoctor(ctx, u, in, doc, h.OnBehalfOf.String)
		if err != nil {
			return nil, err
		}
		if made {
			created = append(created, id)
		}
	}
	return created, nil
}

// DoctorByExternalID loads a doctor by user-management id.
func DoctorByExternalID(ctx context.Context, db bun.IDB, externalID string) (domain.Doctor, bool, error) {
	d, err := store.NewQueries(db).DoctorGetByExternalID(ctx, externalID)
	if errors.Is(err, store.ErrNotFound) {
		return domain.Doctor{}, false, nil
	}
	if err != nil {
		return domain.Doctor{}, false, err
	}
	return d, true, nil
}

// PreferencesOf loads a doctor's preferences, the defaults if none are stored.
func PreferencesOf(ctx context.Context, db bun.IDB, doctorID string) (domain.Preferences, error) {
	prefs, err := store.NewQueries(db).PreferencesGet(ctx, doctorID)
	if errors.Is(err, store.ErrNotFound) {
		return domain.DefaultPreferences(), nil
	}
	return prefs, err
}

// CoveringDoctors are the doctors covering for doctorID at t: active
// doctors who accepted (or for whom an operator approved) the cover. A
// requested cover sends nobody anything until then.
func CoveringDoctors(ctx context.Context, db bun.IDB, doctorID string, t time.Time) ([]domain.Doctor, error) {
	return store.NewQueries(db).DoctorListCovering(ctx, &store.DoctorListCoveringParams{DoctorID: doctorID, At: t})
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("notify: encode detail: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("notify: encode detail: %w", err)
	}
	return m, nil
}

// Batch is the batch u's writes go to.
func (u *Unit) Batch() *store.Batch { return u.batch }
