package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/templates"
)

// Notification is one notification to one doctor.
type Notification struct {
	bun.BaseModel `bun:"table:notifications"`

	ID             string          `bun:"id,pk"`
	DoctorID       string          `bun:"doctor_id"`
	Seq            int64           `bun:"seq"`
	DedupKey       string          `bun:"dedup_key"`
	Type           string          `bun:"type"`
	Category       domain.Category `bun:"category"`
	Priority       domain.Priority `bun:"priority"`
	Title          string          `bun:"title"`
	Body           string          `bun:"body"`
	Data           map[string]any  `bun:"data,type:json"`
	CheckupID      *string         `bun:"checkup_id"`
	ResultVersion  *int            `bun:"result_version"`
	OrderID        *string         `bun:"order_id"`
	SourceEventID  string          `bun:"source_event_id"`
	OnBehalfOf     *string         `bun:"on_behalf_of"`
	State          string          `bun:"state"`
	StateReason    string          `bun:"state_reason"`
	SupersededBy   *string         `bun:"superseded_by"`
	SendAt         time.Time       `bun:"send_at"`
	ExpiresAt      *time.Time      `bun:"expires_at"`
	CreatedAt      time.Time       `bun:"created_at"`
	ReadAt         *time.Time      `bun:"read_at"`
	AcknowledgedAt *time.Time      `bun:"acknowledged_at"`
	AcknowledgedBy *string         `bun:"acknowledged_by"`
	AckNote        *string         `bun:"ack_note"`
}

// NotificationGet is notification id, or ErrNotFound.
func (q *Queries) NotificationGet(ctx context.Context, id string) (*Notification, error) {
	var n Notification
	err := q.db.NewSelect().Model(&n).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load notification: %w", err)
	}
	return &n, nil
}

// NotificationExecutor holds the statements on notifications that run on
// their own; the writes a notifier gathers in a transaction's Batch are the
// Batch's Notification methods below.
type NotificationExecutor interface {
	NotificationGet(ctx context.Context, id string) (*Notification, error)
	NotificationListByIDs(ctx context.Context, ids []string) ([]Notification, error)
	NotificationExistsByDedupKey(ctx context.Context, dedupKey string) (bool, error)
	NotificationListExistingDedupKeys(ctx context.Context, dedupKeys []string) (map[string]bool, error)
	NotificationListRecipients(ctx context.Context, params *NotificationListRecipientsParams) ([]NotificationRecipient, error)
	NotificationListHolders(ctx context.Context, checkupID string) ([]NotificationHolder, error)
	DoctorListByIDs(ctx context.Context, ids []string) ([]domain.Doctor, error)
	NotificationCountForDashboard(ctx context.Context, params *NotificationDashboardCountsParams) (NotificationDashboardCounts, error)
	NotificationListAfter(ctx context.Context, params *NotificationListAfterParams) ([]Notification, error)
	NotificationListForDoctor(ctx context.Context, params *NotificationListForDoctorParams) ([]Notification, error)
	NotificationGetForDoctor(ctx context.Context, params *NotificationGetForDoctorParams) (*Notification, error)
	NotificationListSent(ctx context.Context, ids []string) ([]Notification, error)
	NotificationMarkRead(ctx context.Context, params *NotificationMarkReadParams) error
	NotificationMarkAllRead(ctx context.Context, params *NotificationMarkAllReadParams) (int64, error)
	NotificationAcknowledge(ctx context.Context, params *NotificationAcknowledgeParams) (bool, error)
	DoctorGetNotificationSeq(ctx context.Context, doctorID string) (int64, error)
	DoctorGetName(ctx context.Context, doctorID string) (string, error)
}

// NotificationWant names one recipient a notifier looks for: the doctor's
// external user id, and the dedup key prefix of the intent (its key with
// no recipient) whose notification it checks for.
type NotificationWant struct {
	ExternalID  string
	DedupPrefix string
}

// NotificationListRecipientsParams reads the recipients of Wants as of Now.
type NotificationListRecipientsParams struct {
	Wants []NotificationWant
	Now   time.Time
}

// NotificationRecipient is a want whose doctor exists: the doctor's
// profile as notifying needs it, their stored preferences (not Valid
// when they have none), whether someone covers for them at Now, and
// whether the intent already notified them.
type NotificationRecipient struct {
	ExternalID  string
	DedupPrefix string
	Doctor      domain.Doctor // ID, ExternalUserID, Name, Locale, TimeZone, Active
	Channels    sql.NullString
	QuietStart  sql.NullString
	QuietEnd    sql.NullString
	Digest      sql.NullString
	Fallback    sql.NullString
	HasCover    bool
	Notified    bool
}

// NotificationHolder is a doctor (and the doctor it is a copy for, if
// any) holding an active notification.
type NotificationHolder struct {
	DoctorID   string         `bun:"doctor_id"`
	OnBehalfOf sql.NullString `bun:"on_behalf_of"`
}

// NotificationSupersedeParams supersedes, with Version, the active
// notifications of CheckupID's earlier result versions.
type NotificationSupersedeParams struct {
	CheckupID string
	Version   int
	Reason    string
}

// NotificationRetractParams retracts CheckupID's active notifications
// for Reason.
type NotificationRetractParams struct {
	CheckupID string
	Reason    string
}

// NotificationExistsByDedupKey reports whether the notification with
// dedupKey exists.
func (q *Queries) NotificationExistsByDedupKey(ctx context.Context, dedupKey string) (bool, error) {
	var exists int
	err := q.db.NewSelect().Table("notifications").ColumnExpr("1").Where("dedup_key = ?", dedupKey).Limit(1).Scan(ctx, &exists)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	}
	return false, fmt.Errorf("look up notification: %w", err)
}

// NotificationListExistingDedupKeys is the set of dedupKeys that have a
// notification.
func (q *Queries) NotificationListExistingDedupKeys(ctx context.Context, dedupKeys []string) (map[string]bool, error) {
	out := make(map[string]bool)
	if len(dedupKeys) == 0 {
		return out, nil
	}
	var found []string
	if err := q.db.NewSelect().Table("notifications").Column("dedup_key").Where("dedup_key IN (?)", bun.List(dedupKeys)).Scan(ctx, &found); err != nil {
		return nil, fmt.Errorf("look up notifications: %w", err)
	}
	for _, k := range found {
		out[k] = true
	}
	return out, nil
}

// recipientQuery reads recipients in one statement, one row per want whose
// doctor exists; the VALUES list (wantRow, repeated) opens it.
const (
	recipientQueryHead = `WITH want(ext, dkey) AS (VALUES `
	wantRow            = `(CAST(? AS TEXT), CAST(? AS TEXT))`
	recipientQueryTail = `)
SELECT want.ext, want.dkey, d.id, d.external_user_id, d.name, d.locale, d.time_zone, d.active,
	p.channels, p.quiet_start, p.quiet_end, p.digest, p.fallback_order,
	EXISTS (SELECT 1 FROM delegations g WHERE g.doctor_id = d.id AND g.status = 'accepted' AND g.starts_at <= ? AND g.ends_at > ?) AS has_cover,
	EXISTS (SELECT 1 FROM notifications n WHERE n.dedup_key = want.dkey || d.id) AS notified
FROM want JOIN doctors d ON d.external_user_id = want.ext LEFT JOIN doctor_preferences p ON p.doctor_id = d.id`
)

// NotificationListRecipients reads the recipients of many wants in one
// statement. It is on the hot path of every notification: on PostgreSQL it
// is a constant statement per number of wants with bind parameters (see
// Rows), scanned by hand.
func (q *Queries) NotificationListRecipients(ctx context.Context, params *NotificationListRecipientsParams) ([]NotificationRecipient, error) {
	if len(params.Wants) == 0 {
		return nil, nil
	}
	args := make([]any, 0, 2*len(params.Wants)+2)
	for _, w := range params.Wants {
		args = append(args, w.ExternalID, w.DedupPrefix)
	}
	args = append(args, params.Now, params.Now)
	query := recipientQueryHead + Repeat(wantRow, len(params.Wants)) + recipientQueryTail
	out := make([]NotificationRecipient, 0, len(params.Wants))
	err := Rows(ctx, q.db, query, args, func(scan Scan) error {
		var r NotificationRecipient
		d := &r.Doctor
		if err := scan(&r.ExternalID, &r.DedupPrefix, &d.ID, &d.ExternalUserID, &d.Name, &d.Locale, &d.TimeZone, &d.Active,
			&r.Channels, &r.QuietStart, &r.QuietEnd, &r.Digest, &r.Fallback, &r.HasCover, &r.Notified); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read recipients: %w", err)
	}
	return out, nil
}

// NotificationListHolders are the doctors (and copies) holding an active
// result notification of checkupID, other than a withdrawal notice
// (templates.TypeResultRetracted), by doctor id.
func (q *Queries) NotificationListHolders(ctx context.Context, checkupID string) ([]NotificationHolder, error) {
	var holders []NotificationHolder
	if err := q.db.NewRaw(`SELECT DISTINCT doctor_id, on_behalf_of FROM notifications
WHERE checkup_id = ? AND state = ? AND type <> ? AND result_version IS NOT NULL ORDER BY doctor_id`,
		checkupID, domain.StateActive, templates.TypeResultRetracted).Scan(ctx, &holders); err != nil {
		return nil, fmt.Errorf("recipients of checkup %s: %w", checkupID, err)
	}
	return holders, nil
}

// DoctorListByIDs loads the doctors with ids, in no particular order.
func (q *Queries) DoctorListByIDs(ctx context.Context, ids []string) ([]domain.Doctor, error) {
	var rows []Doctor
	if err := q.db.NewSelect().Model(&rows).Where("id IN (?)", bun.List(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("load doctors: %w", err)
	}
	docs := make([]domain.Doctor, len(rows))
	for i := range rows {
		docs[i] = rows[i].Domain()
	}
	return docs, nil
}

// lockSeqs takes the row locks that the sequence updates in a batch would,
// first and in id order. Transactions that notify several doctors (a batch
// of checkup events, an order event naming two doctors, copies for
// covering doctors) then lock them in one order and cannot deadlock, which
// PostgreSQL would only break after deadlock_timeout (1 s).
const lockSeqs = "SELECT id FROM doctors WHERE id IN (?) ORDER BY id FOR NO KEY UPDATE"

// NotificationLockDoctors puts, before the statements already in the batch,
// the row locks of doctorIDs (sorted) that their notifications' sequence
// updates take. On SQLite, whose transactions run one at a time and where
// the sequence is taken as each notification is added, there is nothing
// to order.
func (b *Batch) NotificationLockDoctors(ctx context.Context, doctorIDs []string) error {
	if !b.pg {
		return nil
	}
	if err := b.Prepend(ctx, lockSeqs, bun.List(doctorIDs)); err != nil {
		return fmt.Errorf("lock doctors: %w", err)
	}
	return nil
}

// nextSeq takes the doctor's next notification sequence number. It orders
// their notifications for the portal's stream; taking it locks the
// doctor's row until commit, so sequence order is commit order.
const nextSeq = "UPDATE doctors SET notification_seq = notification_seq + 1 WHERE id = ? RETURNING notification_seq"

// NotificationInsert adds the insert of n, numbered with its doctor's next
// sequence number, to the batch. On PostgreSQL the number is taken in the
// insert itself (which locks the doctor's row: see NotificationLockDoctors);
// on SQLite it is taken now, into n.Seq.
func (b *Batch) NotificationInsert(ctx context.Context, n *Notification) error {
	// Returning("NULL"): bun would otherwise read back every nil column.
	insert := b.tx.NewInsert().Model(n).Returning("NULL")
	if b.pg {
		insert = insert.With("seq", b.tx.NewRaw(nextSeq, n.DoctorID)).Value("seq", "(SELECT notification_seq FROM seq)")
	} else if err := b.tx.NewRaw(nextSeq, n.DoctorID).Scan(ctx, &n.Seq); err != nil {
		return fmt.Errorf("next sequence of doctor: %w", err)
	}
	if err := b.Add(ctx, insert); err != nil {
		return fmt.Errorf("insert notification: %w", err)
	}
	return nil
}

// NotificationSupersede marks the active notifications of the checkup's
// result versions older than Version superseded; each points
// (superseded_by) at the notification of Version for the same recipient
// and copy, if there is one. Version's notifications must be in the batch
// before it.
func (b *Batch) NotificationSupersede(ctx context.Context, params *NotificationSupersedeParams) error {
	err := b.Exec(ctx, `UPDATE notifications SET state = ?, state_reason = ?,
	superseded_by = (SELECT s.id FROM notifications s
		WHERE s.checkup_id = notifications.checkup_id AND s.result_version = ? AND s.doctor_id = notifications.doctor_id
			AND COALESCE(s.on_behalf_of, '') = COALESCE(notifications.on_behalf_of, '')
		LIMIT 1)
WHERE checkup_id = ? AND result_version < ? AND state = ?`,
		domain.StateSuperseded, params.Reason, params.Version,
		params.CheckupID, params.Version, domain.StateActive)
	if err != nil {
		return fmt.Errorf("supersede: %w", err)
	}
	return nil
}

// NotificationRetract marks the checkup's active notifications retracted,
// except the notices that a result was withdrawn: they stay true.
func (b *Batch) NotificationRetract(ctx context.Context, params *NotificationRetractParams) error {
	if err := b.Exec(ctx, `UPDATE notifications SET state = ?, state_reason = ? WHERE checkup_id = ? AND state = ? AND type <> ?`,
		domain.StateRetracted, params.Reason, params.CheckupID, domain.StateActive, templates.TypeResultRetracted); err != nil {
		return fmt.Errorf("retract: %w", err)
	}
	return nil
}

// NotificationDashboardCountsParams counts doctor DoctorID's notifications
// for the dashboard; results are those of ResultTypes created since
// ResultsSince.
type NotificationDashboardCountsParams struct {
	DoctorID     string
	ResultTypes  []string
	ResultsSince time.Time
}

// NotificationDashboardCounts are a doctor's unread notifications, active
// unacknowledged critical results, and recent results.
type NotificationDashboardCounts struct {
	Unread   int `bun:"unread"`
	Critical int `bun:"critical"`
	Results  int `bun:"results"`
}

// NotificationCountForDashboard counts, in one statement, what the
// doctor's dashboard shows of their notifications.
func (q *Queries) NotificationCountForDashboard(ctx context.Context, params *NotificationDashboardCountsParams) (NotificationDashboardCounts, error) {
	var counts NotificationDashboardCounts
	err := q.db.NewRaw(`SELECT
	(SELECT count(*) FROM notifications WHERE doctor_id = ? AND read_at IS NULL) AS unread,
	(SELECT count(*) FROM notifications WHERE doctor_id = ? AND category = ? AND state = ? AND acknowledged_at IS NULL) AS critical,
	(SELECT count(*) FROM notifications WHERE doctor_id = ? AND type IN (?) AND created_at >= ?) AS results`,
		params.DoctorID, params.DoctorID, domain.CategoryCriticalResults, domain.StateActive,
		params.DoctorID, bun.List(params.ResultTypes), params.ResultsSince,
	).Scan(ctx, &counts)
	if err != nil {
		return NotificationDashboardCounts{}, fmt.Errorf("count notifications: %w", err)
	}
	return counts, nil
}

// NotificationListAfterParams lists at most Limit notifications of
// DoctorID with a sequence number above After, and at most UpTo if UpTo > 0.
type NotificationListAfterParams struct {
	DoctorID string
	After    int64
	UpTo     int64
	Limit    int
}

// NotificationListAfter lists a doctor's notifications by sequence number,
// oldest first: the portal stream's backlog.
func (q *Queries) NotificationListAfter(ctx context.Context, params *NotificationListAfterParams) ([]Notification, error) {
	var rows []Notification
	sel := q.db.NewSelect().Model(&rows).Where("doctor_id = ?", params.DoctorID).Where("seq > ?", params.After).OrderExpr("seq ASC").Limit(int64(params.Limit))
	if params.UpTo > 0 {
		sel = sel.Where("seq <= ?", params.UpTo)
	}
	if err := sel.Scan(ctx); err != nil {
		return nil, fmt.Errorf("notifications after %d: %w", params.After, err)
	}
	return rows, nil
}

// NotificationListForDoctorParams lists at most Limit of DoctorID's
// notifications, newest first, below sequence number Before when it is
// set, filtered by Unread, Category, Priority and Since when set.
type NotificationListForDoctorParams struct {
	DoctorID string
	Before   *int64
	Unread   bool
	Category string
	Priority string
	Since    time.Time
	Limit    int
}

// summaryColumns are the columns NotificationListForDoctor reads.
var summaryColumns = []string{"id", "seq", "type", "category", "priority", "title", "state", "state_reason", "checkup_id",
	"order_id", "on_behalf_of", "created_at", "read_at", "acknowledged_at"}

// NotificationListForDoctor lists the doctor's notifications, with the
// columns of a summary only (id, seq, type, category, priority, title,
// state, state_reason, checkup_id, order_id, on_behalf_of, created_at,
// read_at, acknowledged_at). It is a constant statement per combination of
// filters, with bind parameters: prepared once per connection, planned
// once (see Rows).
func (q *Queries) NotificationListForDoctor(ctx context.Context, params *NotificationListForDoctorParams) ([]Notification, error) {
	where, args := []string{"doctor_id = ?"}, []any{params.DoctorID}
	if params.Before != nil {
		where, args = append(where, "seq < ?"), append(args, *params.Before)
	}
	if params.Unread {
		where = append(where, "read_at IS NULL")
	}
	if params.Category != "" {
		where, args = append(where, "category = ?"), append(args, params.Category)
	}
	if params.Priority != "" {
		where, args = append(where, "priority = ?"), append(args, params.Priority)
	}
	if !params.Since.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, params.Since)
	}
	query := "SELECT " + strings.Join(summaryColumns, ", ") + " FROM notifications WHERE " + strings.Join(where, " AND ") +
		" ORDER BY seq DESC LIMIT ?"
	rows := make([]Notification, 0, params.Limit)
	err := Rows(ctx, q.db, query, append(args, params.Limit), func(scan Scan) error {
		var n Notification
		if err := scan(&n.ID, &n.Seq, &n.Type, &n.Category, &n.Priority, &n.Title, &n.State, &n.StateReason, &n.CheckupID,
			&n.OrderID, &n.OnBehalfOf, &n.CreatedAt, &n.ReadAt, &n.AcknowledgedAt); err != nil {
			return err
		}
		rows = append(rows, n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	return rows, nil
}

// NotificationGetForDoctorParams names notification ID of doctor DoctorID.
type NotificationGetForDoctorParams struct {
	ID       string
	DoctorID string
}

// NotificationGetForDoctor is the doctor's notification, or ErrNotFound
// when it does not exist or is another doctor's.
func (q *Queries) NotificationGetForDoctor(ctx context.Context, params *NotificationGetForDoctorParams) (*Notification, error) {
	var n Notification
	err := q.db.NewSelect().Model(&n).Where("id = ?", params.ID).Where("doctor_id = ?", params.DoctorID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load notification: %w", err)
	}
	return &n, nil
}

// NotificationListByIDs loads the notifications with ids, in no particular
// order; an id with no notification is left out.
func (q *Queries) NotificationListByIDs(ctx context.Context, ids []string) ([]Notification, error) {
	var rows []Notification
	if len(ids) == 0 {
		return rows, nil
	}
	if err := q.db.NewSelect().Model(&rows).Where("id IN (?)", bun.List(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("load notifications: %w", err)
	}
	return rows, nil
}

// NotificationListSent loads, of the notifications ids, the columns their
// sender sees (id, doctor_id, on_behalf_of, send_at), in no particular
// order.
func (q *Queries) NotificationListSent(ctx context.Context, ids []string) ([]Notification, error) {
	var rows []Notification
	if err := q.db.NewSelect().Model(&rows).Column("id", "doctor_id", "on_behalf_of", "send_at").
		Where("id IN (?)", bun.List(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("load sent notifications: %w", err)
	}
	return rows, nil
}

// NotificationMarkReadParams marks the doctor's notification ID read at At.
type NotificationMarkReadParams struct {
	ID       string
	DoctorID string
	At       time.Time
}

// NotificationMarkRead keeps the first read time.
func (q *Queries) NotificationMarkRead(ctx context.Context, params *NotificationMarkReadParams) error {
	if _, err := q.db.NewRaw(`UPDATE notifications SET read_at = ? WHERE id = ? AND doctor_id = ? AND read_at IS NULL`,
		params.At, params.ID, params.DoctorID).Exec(ctx); err != nil {
		return fmt.Errorf("mark read: %w", err)
	}
	return nil
}

// NotificationMarkAllReadParams marks read, at At, the doctor's unread
// notifications up to sequence number UpTo (of Category, if set); their
// in-app deliveries move from DeliveryFrom to DeliveryStatus (see
// DeliveryMarkUnreadRead).
type NotificationMarkAllReadParams struct {
	DoctorID       string
	UpTo           int64
	Category       string
	At             time.Time
	DeliveryStatus string
	DeliveryFrom   []string
}

// cond selects the notifications the params mark read.
func (p *NotificationMarkAllReadParams) cond() (string, []any) {
	cond, args := "doctor_id = ? AND read_at IS NULL AND seq <= ?", []any{p.DoctorID, p.UpTo}
	if p.Category != "" {
		cond, args = cond+" AND category = ?", append(args, p.Category)
	}
	return cond, args
}

// NotificationMarkAllRead returns how many notifications it marked.
func (q *Queries) NotificationMarkAllRead(ctx context.Context, params *NotificationMarkAllReadParams) (int64, error) {
	cond, args := params.cond()
	res, err := q.db.NewRaw(`UPDATE notifications SET read_at = ? WHERE `+cond, append([]any{params.At}, args...)...).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("mark all read: %w", err)
	}
	marked, _ := res.RowsAffected()
	return marked, nil
}

// NotificationAcknowledgeParams records that doctor DoctorID acknowledged
// their notification ID at At, with Note (nil for none).
type NotificationAcknowledgeParams struct {
	ID       string
	DoctorID string
	Note     *string
	At       time.Time
}

// NotificationAcknowledge reports whether this was the first
// acknowledgement; a repeat changes nothing. It marks the notification
// read too.
func (q *Queries) NotificationAcknowledge(ctx context.Context, params *NotificationAcknowledgeParams) (bool, error) {
	res, err := q.db.NewRaw(`UPDATE notifications SET acknowledged_at = ?, acknowledged_by = ?, ack_note = ?, read_at = COALESCE(read_at, ?)
WHERE id = ? AND doctor_id = ? AND acknowledged_at IS NULL`, params.At, params.DoctorID, params.Note, params.At, params.ID, params.DoctorID).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("acknowledge: %w", err)
	}
	k, _ := res.RowsAffected()
	return k == 1, nil
}

// DoctorGetNotificationSeq is the doctor's latest notification sequence
// number.
func (q *Queries) DoctorGetNotificationSeq(ctx context.Context, doctorID string) (int64, error) {
	var seq int64
	if err := q.db.NewRaw(`SELECT notification_seq FROM doctors WHERE id = ?`, doctorID).Scan(ctx, &seq); err != nil {
		return 0, fmt.Errorf("read sequence: %w", err)
	}
	return seq, nil
}

// DoctorGetName is the doctor's name, or ErrNotFound: who acknowledged a
// notification.
func (q *Queries) DoctorGetName(ctx context.Context, doctorID string) (string, error) {
	var name string
	err := q.db.NewRaw(`SELECT name FROM doctors WHERE id = ?`, doctorID).Scan(ctx, &name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("load doctor name: %w", err)
	}
	return name, nil
}
