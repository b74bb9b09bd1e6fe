// Package notify turns what happened (a result, an order transition, a
// login) into notifications: it finds the recipients (the doctors named on
// the event and whoever covers for them), applies their preferences and
// quiet hours, stores one notification per recipient under a deterministic
// dedup key, and queues one send-notification command per notification and
// channel through the outbox — all inside the caller's transaction.
package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/domain"
	"github.com/rfd-notify/rfd/events"
	"github.com/rfd-notify/rfd/outbox"
	"github.com/rfd-notify/rfd/templates"
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
	var out Outcome
	seen := map[string]bool{}
	for _, ext := range doctorExternalIDs {
		if seen[ext] {
			continue
		}
		seen[ext] = true
		doc, found, err := DoctorByExternalID(ctx, tx, ext)
		if err != nil {
			return out, err
		}
		if !found {
			if err := n.keepPending(ctx, tx, in, ext); err != nil {
				return out, err
			}
			out.Pending = append(out.Pending, ext)
			continue
		}
		created, err := n.notifyWithCover(ctx, tx, in, doc)
		if err != nil {
			return out, err
		}
		out.Created = append(out.Created, created...)
	}
	return out, nil
}

func (n *Notifier) notifyWithCover(ctx context.Context, tx bun.Tx, in Intent, doc domain.Doctor) ([]string, error) {
	var created []string
	id, ok, err := n.NotifyDoctor(ctx, tx, in, doc, "")
	if err != nil {
		return nil, err
	}
	if ok {
		created = append(created, id)
	}
	covering, err := CoveringDoctors(ctx, tx, doc.ID, n.now())
	if err != nil {
		return nil, err
	}
	for _, cov := range covering {
		id, ok, err := n.NotifyDoctor(ctx, tx, in, cov, doc.ID)
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
// doc covers for, or ""). It reports created=false when that notification
// already exists.
func (n *Notifier) NotifyDoctor(ctx context.Context, tx bun.Tx, in Intent, doc domain.Doctor, onBehalfOf string) (string, bool, error) {
	key := DedupKey(in, doc.ID, onBehalfOf)
	id := NotificationID(key)

	var exists int
	err := tx.NewSelect().Table("notifications").ColumnExpr("1").Where("dedup_key = ?", key).Limit(1).Scan(ctx, &exists)
	switch {
	case err == nil:
		return id, false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return "", false, fmt.Errorf("notify: look up %s: %w", id, err)
	}

	prefs, err := PreferencesOf(ctx, tx, doc.ID)
	if err != nil {
		return "", false, err
	}
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
		return "", false, fmt.Errorf("notify: render %s: %w", in.Type, err)
	}

	var seq int64
	if err := tx.NewRaw("UPDATE doctors SET notification_seq = notification_seq + 1 WHERE id = ? RETURNING notification_seq", doc.ID).Scan(ctx, &seq); err != nil {
		return "", false, fmt.Errorf("notify: next sequence of doctor: %w", err)
	}

	data, err := toMap(detail)
	if err != nil {
		return "", false, err
	}
	row := &domain.Notification{
		ID:            id,
		DoctorID:      doc.ID,
		Seq:           seq,
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
	// Returning("NULL"): bun would otherwise read back every nil column,
	// turning the insert into a query.
	if _, err := tx.NewInsert().Model(row).Returning("NULL").Exec(ctx); err != nil {
		return "", false, fmt.Errorf("notify: insert notification: %w", err)
	}

	for _, ch := range channelsOf(in, prefs) {
		if err := n.queueDelivery(ctx, tx, row, doc, ch); err != nil {
			return "", false, err
		}
	}
	return id, true, nil
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

func (n *Notifier) queueDelivery(ctx context.Context, tx bun.Tx, nt *domain.Notification, doc domain.Doctor, ch domain.Channel) error {
	d := &domain.Delivery{
		ID:             DeliveryID(nt.ID, ch),
		NotificationID: nt.ID,
		Channel:        ch,
		Status:         domain.DeliveryQueued,
		SendAt:         nt.SendAt,
		CreatedAt:      nt.CreatedAt,
		UpdatedAt:      nt.CreatedAt,
	}
	if _, err := tx.NewInsert().Model(d).Returning("NULL").Exec(ctx); err != nil {
		return fmt.Errorf("notify: insert delivery: %w", err)
	}
	cmd := events.SendNotification{
		DeliveryID:     d.ID,
		NotificationID: nt.ID,
		DoctorID:       doc.ID,
		Channel:        string(ch),
		Category:       string(nt.Category),
		Priority:       string(nt.Priority),
		Type:           nt.Type,
		SendAt:         nt.SendAt,
		Attempt:        1,
	}
	payload, err := cmd.Encode()
	if err != nil {
		return fmt.Errorf("notify: encode send-notification: %w", err)
	}
	msg := message.NewMessage(d.ID, payload)
	for k, v := range events.CloudEventMetadata(d.ID, events.TypeSendNotification, "rfd-notify", nt.CreatedAt) {
		msg.Metadata.Set(k, v)
	}
	msg.Metadata.Set(outbox.PartitionKeyKey, doc.ID)
	return n.outbox.Publish(ctx, tx, n.sendTopic, msg)
}

func (n *Notifier) keepPending(ctx context.Context, tx bun.Tx, in Intent, externalID string) error {
	raw, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("notify: encode pending intent: %w", err)
	}
	_, err = tx.NewRaw(`INSERT INTO pending_notifications (dedup_key, doctor_external_id, intent, source_event_id, received_at)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING`,
		in.Key+"|ext:"+externalID, externalID, string(raw), in.SourceEventID, n.now().UTC()).Exec(ctx)
	if err != nil {
		return fmt.Errorf("notify: keep pending intent: %w", err)
	}
	return nil
}

// ReleasePending turns the intents waiting for the doctor with externalID
// into notifications; user-created calls it once the doctor exists. Intents
// whose result was corrected or withdrawn meanwhile are dropped.
func (n *Notifier) ReleasePending(ctx context.Context, tx bun.Tx, externalID string) (int, error) {
	doc, found, err := DoctorByExternalID(ctx, tx, externalID)
	if err != nil || !found {
		return 0, err
	}
	var rows []struct {
		DedupKey string `bun:"dedup_key"`
		Intent   string `bun:"intent"`
	}
	if err := tx.NewRaw("SELECT dedup_key, CAST(intent AS TEXT) AS intent FROM pending_notifications WHERE doctor_external_id = ? ORDER BY received_at, dedup_key", externalID).Scan(ctx, &rows); err != nil {
		return 0, fmt.Errorf("notify: read pending intents: %w", err)
	}
	released := 0
	for _, r := range rows {
		var in Intent
		if err := json.Unmarshal([]byte(r.Intent), &in); err != nil {
			return released, fmt.Errorf("notify: decode pending intent: %w", err)
		}
		current, err := stillCurrent(ctx, tx, in)
		if err != nil {
			return released, err
		}
		if current {
			created, err := n.notifyWithCover(ctx, tx, in, doc)
			if err != nil {
				return released, err
			}
			released += len(created)
		}
		if _, err := tx.NewRaw("DELETE FROM pending_notifications WHERE dedup_key = ?", r.DedupKey).Exec(ctx); err != nil {
			return released, fmt.Errorf("notify: delete pending intent: %w", err)
		}
	}
	return released, nil
}

// stillCurrent reports whether a result intent still describes the latest,
// valid version of its checkup.
func stillCurrent(ctx context.Context, tx bun.Tx, in Intent) (bool, error) {
	if in.CheckupID == "" || in.ResultVersion == 0 {
		return true, nil
	}
	var latest struct {
		Version int    `bun:"version"`
		Status  string `bun:"status"`
	}
	err := tx.NewRaw("SELECT version, status FROM result_versions WHERE checkup_id = ? ORDER BY version DESC LIMIT 1", in.CheckupID).Scan(ctx, &latest)
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("notify: latest result version: %w", err)
	}
	withdrawn := latest.Status == events.ResultCancelled || latest.Status == events.ResultEnteredInError
	return latest.Version <= in.ResultVersion && !withdrawn, nil
}

// Supersede marks the active notifications of a checkup's result versions
// older than version as superseded by it; they stay visible, marked.
func Supersede(ctx context.Context, tx bun.Tx, checkupID string, version int) (int64, error) {
	res, err := tx.NewRaw(`UPDATE notifications SET state = ?, state_reason = ?
WHERE checkup_id = ? AND result_version < ? AND state = ?`,
		domain.StateSuperseded, fmt.Sprintf("superseded by result version %d", version), checkupID, version, domain.StateActive).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("notify: supersede: %w", err)
	}
	return res.RowsAffected()
}

// Retract marks every active notification of a checkup retracted with reason.
func Retract(ctx context.Context, tx bun.Tx, checkupID, reason string) (int64, error) {
	res, err := tx.NewRaw(`UPDATE notifications SET state = ?, state_reason = ? WHERE checkup_id = ? AND state = ?`,
		domain.StateRetracted, reason, checkupID, domain.StateActive).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("notify: retract: %w", err)
	}
	if _, err := tx.NewRaw(`DELETE FROM pending_notifications WHERE dedup_key LIKE ?`, "checkup/"+checkupID+"/%").Exec(ctx); err != nil {
		return 0, fmt.Errorf("notify: drop pending intents of retracted checkup: %w", err)
	}
	return res.RowsAffected()
}

// DoctorByExternalID loads a doctor by user-management id.
func DoctorByExternalID(ctx context.Context, db bun.IDB, externalID string) (domain.Doctor, bool, error) {
	var d domain.Doctor
	err := db.NewSelect().Model(&d).Where("external_user_id = ?", externalID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Doctor{}, false, nil
	}
	if err != nil {
		return domain.Doctor{}, false, fmt.Errorf("load doctor: %w", err)
	}
	return d, true, nil
}

// PreferencesOf loads a doctor's preferences, the defaults if none are stored.
func PreferencesOf(ctx context.Context, db bun.IDB, doctorID string) (domain.Preferences, error) {
	var row domain.PreferencesRow
	err := db.NewSelect().Model(&row).Where("doctor_id = ?", doctorID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.DefaultPreferences(), nil
	}
	if err != nil {
		return domain.Preferences{}, fmt.Errorf("load preferences: %w", err)
	}
	return row.Preferences(), nil
}

// CoveringDoctors are the doctors covering for doctorID at t.
func CoveringDoctors(ctx context.Context, db bun.IDB, doctorID string, t time.Time) ([]domain.Doctor, error) {
	var docs []domain.Doctor
	err := db.NewSelect().Model(&docs).
		Where("id IN (SELECT covering_doctor_id FROM delegations WHERE doctor_id = ? AND starts_at <= ? AND ends_at > ?)", doctorID, t.UTC(), t.UTC()).
		Where("active").
		Order("id").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("load covering doctors: %w", err)
	}
	return docs, nil
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
