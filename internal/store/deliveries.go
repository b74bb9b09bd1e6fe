package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
)

// Delivery is one notification on one channel.
type Delivery struct {
	bun.BaseModel `bun:"table:deliveries"`

	ID             string         `bun:"id,pk"`
	NotificationID string         `bun:"notification_id"`
	Channel        domain.Channel `bun:"channel"`
	Status         string         `bun:"status"`
	// StatusReason is ReasonCode's message (and the provider's code); the
	// provider's own error text is never stored.
	StatusReason string `bun:"status_reason"`
	// ReasonCode is the delivery's stable reason code (delivery.Reason*),
	// "" for none.
	ReasonCode string    `bun:"reason_code"`
	SendAt     time.Time `bun:"send_at"`
	CreatedAt  time.Time `bun:"created_at"`
	UpdatedAt  time.Time `bun:"updated_at"`
	// Attempt is the number of the latest attempt (0 before the first).
	Attempt           int        `bun:"attempt"`
	NextAttemptAt     *time.Time `bun:"next_attempt_at"`
	Provider          string     `bun:"provider"`
	ProviderMessageID string     `bun:"provider_message_id"`
}

// DeliveryExecutor holds the statements on deliveries and their attempts.
type DeliveryExecutor interface {
	DeliveryGet(ctx context.Context, id string) (*Delivery, error)
	DeliveryListByIDs(ctx context.Context, ids []string) ([]Delivery, error)
	DeliveryGetForSource(ctx context.Context, params *DeliveryGetForSourceParams) (*Delivery, error)
	DeliveryGetNotificationID(ctx context.Context, id string) (string, error)
	DeliveryListChannels(ctx context.Context, notificationID string) ([]string, error)
	DeliveryListDue(ctx context.Context, params *DeliveryListDueParams) ([]Delivery, error)
	DeliveryInsert(ctx context.Context, d *Delivery) error
	DeliveryDefer(ctx context.Context, params *DeliveryDeferParams) error
	DeliveryWait(ctx context.Context, params *DeliveryWaitParams) error
	DeliveryClaim(ctx context.Context, params *DeliveryClaimParams) (bool, error)
	DeliveryClaimMany(ctx context.Context, params *DeliveryClaimManyParams) ([]string, error)
	DeliveryFinishSent(ctx context.Context, params *DeliveryFinishSentParams) (bool, error)
	DeliveryFinishSentMany(ctx context.Context, params *DeliveryFinishSentManyParams) ([]string, error)
	DeliverySetProvider(ctx context.Context, params *DeliverySetProviderParams) error
	DeliveryScheduleRetry(ctx context.Context, params *DeliveryScheduleRetryParams) error
	DeliveryAdvance(ctx context.Context, params *DeliveryAdvanceParams) (bool, error)
	DeliveryClearDue(ctx context.Context, params *DeliveryClearDueParams) error
	DeliverySweepStuck(ctx context.Context, params *DeliverySweepStuckParams) (int, error)
	DeliveryAttemptInsert(ctx context.Context, a *DeliveryAttempt) error
	DeliveryAttemptInsertMany(ctx context.Context, attempts []DeliveryAttempt) error
	DeliveryAttemptList(ctx context.Context, deliveryID string) ([]DeliveryAttempt, error)
	DeliveryListStatuses(ctx context.Context, notificationID string) ([]DeliveryStatus, error)
	DeliveryListQueuedRefs(ctx context.Context, notificationID string) ([]DeliveryQueuedRef, error)
	DeliveryMarkUnreadRead(ctx context.Context, params *NotificationMarkAllReadParams) error
}

// DeliveryAttempt is a row of delivery_attempts: one call to a provider.
type DeliveryAttempt struct {
	bun.BaseModel `bun:"table:delivery_attempts"`

	DeliveryID        string    `bun:"delivery_id"`
	Attempt           int       `bun:"attempt"`
	Provider          string    `bun:"provider"`
	ProviderMessageID string    `bun:"provider_message_id"`
	Outcome           string    `bun:"outcome"`
	ReasonCode        string    `bun:"reason_code"`
	Error             string    `bun:"error"`
	StartedAt         time.Time `bun:"started_at"`
	FinishedAt        time.Time `bun:"finished_at"`
}

// DeliveryGetForSourceParams names delivery ID, if its notification was
// made from SourceEventID.
type DeliveryGetForSourceParams struct {
	ID            string
	SourceEventID string
}

// DeliveryListDueParams lists at most Limit queued deliveries whose next
// attempt is due at Now.
type DeliveryListDueParams struct {
	Now   time.Time
	Limit int
}

// DeliveryDeferParams sets queued delivery ID's next attempt to Due.
type DeliveryDeferParams struct {
	ID  string
	Due time.Time
	Now time.Time
}

// DeliveryWaitParams makes queued delivery ID wait until Next, for
// ReasonCode (StatusReason is its message), without using up an attempt.
type DeliveryWaitParams struct {
	ID           string
	Next         time.Time
	ReasonCode   string
	StatusReason string
	Now          time.Time
}

// DeliveryClaimParams marks delivery ID, queued or sending, as sending
// attempt Attempt.
type DeliveryClaimParams struct {
	ID      string
	Attempt int
	Now     time.Time
}

// DeliveryClaimManyParams marks each delivery of Attempts (id to attempt),
// queued or sending, as sending that attempt.
type DeliveryClaimManyParams struct {
	Attempts map[string]int
	Now      time.Time
}

// DeliveryFinishSentParams records which provider took delivery ID, and its
// message id, and moves it to Status (sent or delivered) if its status is
// one of From.
type DeliveryFinishSentParams struct {
	ID                string
	Status            string
	From              []string
	Provider          string
	ProviderMessageID string
	Now               time.Time
}

// DeliveryFinishSentManyParams is DeliveryFinishSentParams for several
// deliveries of one provider: ProviderMessageIDs maps each delivery id to
// its provider message id.
type DeliveryFinishSentManyParams struct {
	Status             string
	From               []string
	Provider           string
	ProviderMessageIDs map[string]string
	Now                time.Time
}

// DeliverySetProviderParams records which provider took delivery ID, and
// its message id.
type DeliverySetProviderParams struct {
	ID                string
	Provider          string
	ProviderMessageID string
}

// DeliveryScheduleRetryParams sends delivery ID, sending, back to queued
// with its next attempt due at Next.
type DeliveryScheduleRetryParams struct {
	ID           string
	ReasonCode   string
	StatusReason string
	Next         time.Time
	Now          time.Time
}

// DeliveryAdvanceParams moves delivery ID to Status if its status is one of
// From (the caller knows which statuses precede Status).
type DeliveryAdvanceParams struct {
	ID           string
	Status       string
	From         []string
	ReasonCode   string
	StatusReason string
	Now          time.Time
}

// DeliveryClearDueParams clears delivery ID's due time: its next attempt
// was published.
type DeliveryClearDueParams struct {
	ID  string
	Now time.Time
}

// DeliverySweepStuckParams sends deliveries sending since before Cutoff
// back to queued, due at Now, with ReasonCode.
type DeliverySweepStuckParams struct {
	Cutoff       time.Time
	Now          time.Time
	ReasonCode   string
	StatusReason string
}

// DeliveryGet is delivery id, or ErrNotFound.
func (q *Queries) DeliveryGet(ctx context.Context, id string) (*Delivery, error) {
	var d Delivery
	if err := one(q.db.NewSelect().Model(&d).Where("id = ?", id).Scan(ctx), "load delivery"); err != nil {
		return nil, err
	}
	return &d, nil
}

// DeliveryListByIDs loads the deliveries with ids, in no particular order;
// an id with no delivery is left out.
func (q *Queries) DeliveryListByIDs(ctx context.Context, ids []string) ([]Delivery, error) {
	var ds []Delivery
	if len(ids) == 0 {
		return ds, nil
	}
	if err := q.db.NewSelect().Model(&ds).Where("id IN (?)", bun.List(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("load deliveries: %w", err)
	}
	return ds, nil
}

// DeliveryGetForSource is delivery ID if its notification was made from
// SourceEventID, else ErrNotFound.
func (q *Queries) DeliveryGetForSource(ctx context.Context, params *DeliveryGetForSourceParams) (*Delivery, error) {
	var d Delivery
	if err := one(q.db.NewSelect().Model(&d).Where("id = ?", params.ID).
		Where("notification_id IN (SELECT id FROM notifications WHERE source_event_id = ?)", params.SourceEventID).Scan(ctx), "load delivery"); err != nil {
		return nil, err
	}
	return &d, nil
}

// DeliveryGetNotificationID is the notification of delivery id, or
// ErrNotFound.
func (q *Queries) DeliveryGetNotificationID(ctx context.Context, id string) (string, error) {
	var notificationID string
	if err := one(q.db.NewRaw(`SELECT notification_id FROM deliveries WHERE id = ?`, id).Scan(ctx, &notificationID), "notification of delivery"); err != nil {
		return "", err
	}
	return notificationID, nil
}

// DeliveryListChannels are the channels notificationID has a delivery on.
func (q *Queries) DeliveryListChannels(ctx context.Context, notificationID string) ([]string, error) {
	var channels []string
	if err := q.db.NewRaw(`SELECT channel FROM deliveries WHERE notification_id = ?`, notificationID).Scan(ctx, &channels); err != nil {
		return nil, fmt.Errorf("channels of notification: %w", err)
	}
	return channels, nil
}

// DeliveryListDue lists the queued deliveries whose next attempt is due,
// oldest due first. On PostgreSQL it locks them, skipping those another
// transaction holds, so that several schedulers share the work.
func (q *Queries) DeliveryListDue(ctx context.Context, params *DeliveryListDueParams) ([]Delivery, error) {
	lock := ""
	if q.pg {
		lock = " FOR UPDATE OF d SKIP LOCKED"
	}
	var due []Delivery
	if err := q.db.NewRaw(`SELECT d.* FROM deliveries d WHERE d.status = ? AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?
ORDER BY d.next_attempt_at LIMIT ?`+lock, domain.DeliveryQueued, params.Now, params.Limit).Scan(ctx, &due); err != nil {
		return nil, fmt.Errorf("due deliveries: %w", err)
	}
	return due, nil
}

func (q *Queries) DeliveryInsert(ctx context.Context, d *Delivery) error {
	// Returning("NULL"): bun would otherwise read back every nil column.
	if _, err := q.db.NewInsert().Model(d).Returning("NULL").Exec(ctx); err != nil {
		return fmt.Errorf("insert delivery: %w", err)
	}
	return nil
}

func (q *Queries) DeliveryDefer(ctx context.Context, params *DeliveryDeferParams) error {
	if _, err := q.db.NewRaw(`UPDATE deliveries SET next_attempt_at = ?, updated_at = ? WHERE id = ? AND status = ?`,
		params.Due, params.Now, params.ID, domain.DeliveryQueued).Exec(ctx); err != nil {
		return fmt.Errorf("defer delivery: %w", err)
	}
	return nil
}

func (q *Queries) DeliveryWait(ctx context.Context, params *DeliveryWaitParams) error {
	if _, err := q.db.NewRaw(`UPDATE deliveries SET next_attempt_at = ?, reason_code = ?, status_reason = ?, updated_at = ? WHERE id = ? AND status = ?`,
		params.Next, params.ReasonCode, params.StatusReason, params.Now, params.ID, domain.DeliveryQueued).Exec(ctx); err != nil {
		return fmt.Errorf("delivery wait: %w", err)
	}
	return nil
}

// DeliveryClaim reports whether the delivery was claimed.
func (q *Queries) DeliveryClaim(ctx context.Context, params *DeliveryClaimParams) (bool, error) {
	res, err := q.db.NewRaw(`UPDATE deliveries SET status = ?, attempt = ?, next_attempt_at = NULL, updated_at = ? WHERE id = ? AND status IN (?, ?)`,
		domain.DeliverySending, params.Attempt, params.Now, params.ID, domain.DeliveryQueued, domain.DeliverySending).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("claim delivery: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// DeliveryClaimMany is DeliveryClaim for several deliveries in one
// statement; it returns the ids it claimed, in no particular order.
func (q *Queries) DeliveryClaimMany(ctx context.Context, params *DeliveryClaimManyParams) ([]string, error) {
	if len(params.Attempts) == 0 {
		return nil, nil
	}
	ids, attempt, caseArgs := caseByID(params.Attempts)
	args := append([]any{domain.DeliverySending}, caseArgs...)
	args = append(args, params.Now, bun.List(ids), domain.DeliveryQueued, domain.DeliverySending)
	var claimed []string
	if err := q.db.NewRaw(`UPDATE deliveries SET status = ?, attempt = `+attempt+`, next_attempt_at = NULL, updated_at = ?
WHERE id IN (?) AND status IN (?, ?) RETURNING id`, args...).Scan(ctx, &claimed); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	return claimed, nil
}

// caseByID is the sorted ids of values (one text for one set of rows) and
// "CASE id WHEN ? THEN ? ... END" with its arguments, which gives each row
// of a multi-row UPDATE its own value.
func caseByID[V any](values map[string]V) (ids []string, expr string, args []any) {
	ids = make([]string, 0, len(values))
	for id := range values {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	b.WriteString("CASE id")
	args = make([]any, 0, 2*len(ids))
	for _, id := range ids {
		b.WriteString(" WHEN ? THEN ?")
		args = append(args, id, values[id])
	}
	b.WriteString(" END")
	return ids, b.String(), args
}

// DeliveryFinishSent is DeliverySetProvider and DeliveryAdvance in one
// statement; it reports whether the delivery moved. The provider is
// recorded only with the move.
func (q *Queries) DeliveryFinishSent(ctx context.Context, params *DeliveryFinishSentParams) (bool, error) {
	res, err := q.db.NewRaw(`UPDATE deliveries SET status = ?, reason_code = '', status_reason = '', next_attempt_at = NULL, updated_at = ?,
provider = ?, provider_message_id = ? WHERE id = ? AND status IN (?)`,
		params.Status, params.Now, params.Provider, params.ProviderMessageID, params.ID, bun.List(params.From)).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("finish delivery as %s: %w", params.Status, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// DeliveryFinishSentMany is DeliveryFinishSent for several deliveries in
// one statement; it returns the ids that moved, in no particular order.
func (q *Queries) DeliveryFinishSentMany(ctx context.Context, params *DeliveryFinishSentManyParams) ([]string, error) {
	if len(params.ProviderMessageIDs) == 0 {
		return nil, nil
	}
	ids, messageID, caseArgs := caseByID(params.ProviderMessageIDs)
	args := append([]any{params.Status, params.Now, params.Provider}, caseArgs...)
	args = append(args, bun.List(ids), bun.List(params.From))
	var moved []string
	if err := q.db.NewRaw(`UPDATE deliveries SET status = ?, reason_code = '', status_reason = '', next_attempt_at = NULL, updated_at = ?,
provider = ?, provider_message_id = `+messageID+` WHERE id IN (?) AND status IN (?) RETURNING id`, args...).Scan(ctx, &moved); err != nil {
		return nil, fmt.Errorf("finish deliveries as %s: %w", params.Status, err)
	}
	return moved, nil
}

func (q *Queries) DeliverySetProvider(ctx context.Context, params *DeliverySetProviderParams) error {
	if _, err := q.db.NewRaw(`UPDATE deliveries SET provider = ?, provider_message_id = ? WHERE id = ?`,
		params.Provider, params.ProviderMessageID, params.ID).Exec(ctx); err != nil {
		return fmt.Errorf("record provider id: %w", err)
	}
	return nil
}

func (q *Queries) DeliveryScheduleRetry(ctx context.Context, params *DeliveryScheduleRetryParams) error {
	if _, err := q.db.NewRaw(`UPDATE deliveries SET status = ?, reason_code = ?, status_reason = ?, next_attempt_at = ?, updated_at = ? WHERE id = ? AND status = ?`,
		domain.DeliveryQueued, params.ReasonCode, params.StatusReason, params.Next, params.Now, params.ID, domain.DeliverySending).Exec(ctx); err != nil {
		return fmt.Errorf("schedule retry: %w", err)
	}
	return nil
}

// DeliveryAdvance reports whether the delivery moved.
func (q *Queries) DeliveryAdvance(ctx context.Context, params *DeliveryAdvanceParams) (bool, error) {
	res, err := q.db.NewRaw(`UPDATE deliveries SET status = ?, reason_code = ?, status_reason = ?, next_attempt_at = NULL, updated_at = ? WHERE id = ? AND status IN (?)`,
		params.Status, params.ReasonCode, params.StatusReason, params.Now, params.ID, bun.List(params.From)).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("advance delivery to %s: %w", params.Status, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

func (q *Queries) DeliveryClearDue(ctx context.Context, params *DeliveryClearDueParams) error {
	if _, err := q.db.NewRaw(`UPDATE deliveries SET next_attempt_at = NULL, updated_at = ? WHERE id = ?`, params.Now, params.ID).Exec(ctx); err != nil {
		return fmt.Errorf("clear due time: %w", err)
	}
	return nil
}

// DeliverySweepStuck returns how many deliveries it sent back.
func (q *Queries) DeliverySweepStuck(ctx context.Context, params *DeliverySweepStuckParams) (int, error) {
	res, err := q.db.NewRaw(`UPDATE deliveries SET status = ?, reason_code = ?, status_reason = ?, next_attempt_at = ?, updated_at = ?
WHERE status = ? AND updated_at < ?`,
		domain.DeliveryQueued, params.ReasonCode, params.StatusReason, params.Now, params.Now,
		domain.DeliverySending, params.Cutoff).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("sweep stuck deliveries: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sweep stuck deliveries: %w", err)
	}
	return int(n), nil
}

func (q *Queries) DeliveryAttemptInsert(ctx context.Context, a *DeliveryAttempt) error {
	if _, err := q.db.NewRaw(`INSERT INTO delivery_attempts (delivery_id, attempt, provider, provider_message_id, outcome, reason_code, error, started_at, finished_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.DeliveryID, a.Attempt, a.Provider, a.ProviderMessageID, a.Outcome, a.ReasonCode,
		a.Error, a.StartedAt, a.FinishedAt).Exec(ctx); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	return nil
}

// DeliveryAttemptInsertMany records several attempts in one statement.
func (q *Queries) DeliveryAttemptInsertMany(ctx context.Context, attempts []DeliveryAttempt) error {
	if len(attempts) == 0 {
		return nil
	}
	if _, err := q.db.NewInsert().Model(&attempts).Returning("NULL").Exec(ctx); err != nil {
		return fmt.Errorf("record attempts: %w", err)
	}
	return nil
}

// DeliveryAttemptList lists a delivery's attempts, oldest first. The
// stored error text is not read: callers show the reason code's message.
func (q *Queries) DeliveryAttemptList(ctx context.Context, deliveryID string) ([]DeliveryAttempt, error) {
	var attempts []DeliveryAttempt
	if err := q.db.NewRaw(`SELECT attempt, provider, provider_message_id, outcome, reason_code, started_at, finished_at
FROM delivery_attempts WHERE delivery_id = ? ORDER BY attempt, id`, deliveryID).Scan(ctx, &attempts); err != nil {
		return nil, fmt.Errorf("delivery attempts: %w", err)
	}
	return attempts, nil
}

// DeliveryInsertMany adds the insert of deliveries, in one statement, to
// the batch.
func (b *Batch) DeliveryInsertMany(ctx context.Context, deliveries []Delivery) error {
	if err := b.Add(ctx, b.tx.NewInsert().Model(&deliveries).Returning("NULL")); err != nil {
		return fmt.Errorf("insert deliveries: %w", err)
	}
	return nil
}

// DeliveryStatus is a delivery as a notification's detail shows it.
type DeliveryStatus struct {
	Channel    domain.Channel `bun:"channel"`
	Status     string         `bun:"status"`
	ReasonCode string         `bun:"reason_code"`
	UpdatedAt  time.Time      `bun:"updated_at"`
}

// DeliveryQueuedRef is a delivery as the sender of its notification sees
// it.
type DeliveryQueuedRef struct {
	ID      string         `bun:"id"`
	Channel domain.Channel `bun:"channel"`
	Status  string         `bun:"status"`
}

// DeliveryListStatuses lists the notification's deliveries by channel.
func (q *Queries) DeliveryListStatuses(ctx context.Context, notificationID string) ([]DeliveryStatus, error) {
	var out []DeliveryStatus
	if err := q.db.NewRaw(`SELECT channel, status, reason_code, updated_at FROM deliveries WHERE notification_id = ? ORDER BY channel`, notificationID).
		Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("load deliveries: %w", err)
	}
	return out, nil
}

// DeliveryListQueuedRefs lists the notification's deliveries by channel.
func (q *Queries) DeliveryListQueuedRefs(ctx context.Context, notificationID string) ([]DeliveryQueuedRef, error) {
	var out []DeliveryQueuedRef
	if err := q.db.NewRaw(`SELECT id, channel, status FROM deliveries WHERE notification_id = ? ORDER BY channel`, notificationID).Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("load deliveries: %w", err)
	}
	return out, nil
}

// DeliveryMarkUnreadRead moves the in-app deliveries of the notifications
// NotificationMarkAllRead is about to mark read to params.DeliveryStatus.
func (q *Queries) DeliveryMarkUnreadRead(ctx context.Context, params *NotificationMarkAllReadParams) error {
	cond, args := params.cond()
	if _, err := q.db.NewRaw(`UPDATE deliveries SET status = ?, status_reason = '', reason_code = '', next_attempt_at = NULL, updated_at = ?
WHERE channel = ? AND status IN (?) AND notification_id IN (SELECT id FROM notifications WHERE `+cond+`)`,
		append([]any{params.DeliveryStatus, params.At, domain.ChannelInApp, bun.List(params.DeliveryFrom)}, args...)...).Exec(ctx); err != nil {
		return fmt.Errorf("advance in-app deliveries: %w", err)
	}
	return nil
}
