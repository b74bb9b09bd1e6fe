package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ReportExecutor holds the statements of the operators' reports: the
// critical-result timeliness read, and report_mails (a stored report
// e-mail, sent once).
type ReportExecutor interface {
	ReportListTimeliness(ctx context.Context, params *ReportListTimelinessParams) ([]ReportTimelinessRow, error)
	ReportMailExists(ctx context.Context, id string) (bool, error)
	ReportMailInsert(ctx context.Context, mail *ReportMail) (bool, error)
	ReportMailGet(ctx context.Context, id string) (*ReportMail, error)
	ReportMailRecordFailure(ctx context.Context, params *ReportMailRecordFailureParams) error
	ReportMailMarkSent(ctx context.Context, params *ReportMailMarkSentParams) error
}

// ReportTimelinessRow is one notification of the timeliness report, with
// the times of its result event, its first delivery and its
// acknowledgement, and the highest escalation level taken; only ids and
// times.
type ReportTimelinessRow struct {
	ID             string     `bun:"id"`
	DoctorID       string     `bun:"doctor_id"`
	CreatedAt      time.Time  `bun:"created_at"`
	AcknowledgedAt *time.Time `bun:"acknowledged_at"`
	EventAt        *time.Time `bun:"event_at"`
	DeliveredAt    *time.Time `bun:"delivered_at"`
	Level          *int       `bun:"level"`
}

// ReportListTimelinessParams selects the doctors' own notifications of
// Priority made in [From, To).
type ReportListTimelinessParams struct {
	Priority string
	From     time.Time
	To       time.Time
}

// ReportMail is a row of report_mails. Insert writes ID, Report,
// PeriodStart, PeriodEnd, Recipient, Body and CreatedAt; Get reads ID,
// Recipient, Body and Status.
type ReportMail struct {
	ID          string    `bun:"id"`
	Report      string    `bun:"report"`
	PeriodStart time.Time `bun:"period_start"`
	PeriodEnd   time.Time `bun:"period_end"`
	Recipient   string    `bun:"recipient"`
	Body        string    `bun:"body"`
	Status      string    `bun:"status"`
	CreatedAt   time.Time `bun:"created_at"`
}

// ReportMailRecordFailureParams counts a failed attempt to send report
// mail ID, with its Error.
type ReportMailRecordFailureParams struct {
	ID    string
	Error string
}

// ReportMailMarkSentParams marks report mail ID sent At, as the provider's
// MessageID.
type ReportMailMarkSentParams struct {
	ID        string
	MessageID string
	At        time.Time
}

// ReportListTimeliness lists the notifications in creation order.
func (q *Queries) ReportListTimeliness(ctx context.Context, params *ReportListTimelinessParams) ([]ReportTimelinessRow, error) {
	var rows []ReportTimelinessRow
	err := q.db.NewRaw(`SELECT n.id, n.doctor_id, n.created_at, n.acknowledged_at,
  (SELECT rv.occurred_at FROM result_versions rv WHERE rv.checkup_id = n.checkup_id AND rv.version = n.result_version) AS event_at,
  (SELECT MIN(d.updated_at) FROM deliveries d WHERE d.notification_id = n.id AND d.status IN ('sent', 'delivered', 'read', 'acknowledged')) AS delivered_at,
  (SELECT MAX(s.level) FROM escalation_steps s WHERE s.notification_id = n.id) AS level
FROM notifications n
WHERE n.priority = ? AND n.on_behalf_of IS NULL AND n.created_at >= ? AND n.created_at < ?
ORDER BY n.created_at, n.id`, params.Priority, params.From, params.To).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("list timeliness: %w", err)
	}
	return rows, nil
}

func (q *Queries) ReportMailExists(ctx context.Context, id string) (bool, error) {
	var exists int
	if err := q.db.NewRaw(`SELECT COUNT(*) FROM report_mails WHERE id = ?`, id).Scan(ctx, &exists); err != nil {
		return false, fmt.Errorf("look up report mail: %w", err)
	}
	return exists > 0, nil
}

// ReportMailInsert reports whether it stored the mail: false when one with
// its id is stored already.
func (q *Queries) ReportMailInsert(ctx context.Context, mail *ReportMail) (bool, error) {
	res, err := q.db.NewRaw(`INSERT INTO report_mails (id, report, period_start, period_end, recipient, body, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`, mail.ID, mail.Report, mail.PeriodStart, mail.PeriodEnd, mail.Recipient, mail.Body, mail.CreatedAt).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("insert report mail: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert report mail: %w", err)
	}
	return n > 0, nil
}

// ReportMailGet is report mail id (its id, recipient, body and status), or
// ErrNotFound.
func (q *Queries) ReportMailGet(ctx context.Context, id string) (*ReportMail, error) {
	var rm ReportMail
	err := q.db.NewRaw(`SELECT id, recipient, body, status FROM report_mails WHERE id = ?`, id).Scan(ctx, &rm)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get report mail: %w", err)
	}
	return &rm, nil
}

func (q *Queries) ReportMailRecordFailure(ctx context.Context, params *ReportMailRecordFailureParams) error {
	if _, err := q.db.NewRaw(`UPDATE report_mails SET attempts = attempts + 1, last_error = ? WHERE id = ?`,
		params.Error, params.ID).Exec(ctx); err != nil {
		return fmt.Errorf("record report mail failure: %w", err)
	}
	return nil
}

func (q *Queries) ReportMailMarkSent(ctx context.Context, params *ReportMailMarkSentParams) error {
	if _, err := q.db.NewRaw(`UPDATE report_mails SET status = 'sent', attempts = attempts + 1, last_error = '', message_id = ?, sent_at = ? WHERE id = ?`,
		params.MessageID, params.At, params.ID).Exec(ctx); err != nil {
		return fmt.Errorf("mark report mail sent: %w", err)
	}
	return nil
}
