package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// RetentionExecutor holds the retention job's batched deletes: of the rows
// of a table past their age, and of the consumed rows of a SQL topic.
type RetentionExecutor interface {
	RetentionDeleteBatch(ctx context.Context, params *RetentionDeleteBatchParams) (int, error)
	SQLTopicMinAcked(ctx context.Context, offsetsTable string) (acked int64, ok bool, err error)
	SQLTopicDeleteAckedBatch(ctx context.Context, params *SQLTopicDeleteAckedBatchParams) (int, error)
	SQLTopicCountHeldBack(ctx context.Context, params *SQLTopicHeldBackParams) (int, error)
	SQLTopicGroupsAt(ctx context.Context, params *SQLTopicGroupsAtParams) ([]string, error)
}

// RetentionTable is a table retention deletes from: rows whose column is
// before the cutoff (and that match extra) are deleted, by key.
type RetentionTable struct {
	table  string
	key    string
	column string
	extra  string
}

// Name is the table's name.
func (t RetentionTable) Name() string { return t.table }

// The tables retention deletes from.
var (
	RetentionNotifications = RetentionTable{table: "notifications", key: "id", column: "created_at"}
	// A sent report e-mail only: one still to be sent stays.
	RetentionReportMails    = RetentionTable{table: "report_mails", key: "id", column: "sent_at", extra: "status = 'sent'"}
	RetentionInbox          = RetentionTable{table: "inbox", key: "consumer, message_id", column: "processed_at"}
	RetentionCronRuns       = RetentionTable{table: "cron_runs", key: "job, slot", column: "started_at"}
	RetentionPoisonMessages = RetentionTable{table: "poison_messages", key: "id", column: "state_changed_at", extra: "state <> 'pending'"}
	RetentionAuditLog       = RetentionTable{table: "audit_log", key: "id", column: "occurred_at"}
	RetentionLoginAudit     = RetentionTable{table: "login_audit", key: "id", column: "occurred_at"}
)

// RetentionDeleteBatchParams deletes at most Limit rows of Table older
// than Before.
type RetentionDeleteBatchParams struct {
	Table  RetentionTable
	Before time.Time
	Limit  int
}

// RetentionDeleteBatch deletes one batch and returns how many rows it
// deleted; fewer than Limit means none is left.
func (q *Queries) RetentionDeleteBatch(ctx context.Context, params *RetentionDeleteBatchParams) (int, error) {
	t := params.Table
	where := t.column + " < ?"
	if t.extra != "" {
		where += " AND " + t.extra
	}
	res, err := q.db.NewRaw(`DELETE FROM `+t.table+` WHERE (`+t.key+`) IN (SELECT `+t.key+` FROM `+t.table+` WHERE `+where+` LIMIT ?)`,
		params.Before, params.Limit).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("delete from %s: %w", t.table, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete from %s: %w", t.table, err)
	}
	return int(n), nil
}

// SQLTopicMinAcked is the lowest offset every consumer group of a SQL
// topic has acknowledged, read from its offsets table; ok=false when no
// group has acknowledged anything or the table does not exist (a topic
// nobody consumes).
func (q *Queries) SQLTopicMinAcked(ctx context.Context, offsetsTable string) (int64, bool, error) {
	var acked sql.NullInt64
	if err := q.db.NewRaw(`SELECT MIN(offset_acked) FROM `+offsetsTable).Scan(ctx, &acked); err != nil {
		if missingTable(err) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("read %s: %w", offsetsTable, err)
	}
	return acked.Int64, acked.Valid, nil
}

func missingTable(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "no such table") || strings.Contains(msg, "does not exist")
}

// SQLTopicDeleteAckedBatchParams deletes at most Limit rows of the topic
// table MessagesTable at or below offset Acked and older than Before.
type SQLTopicDeleteAckedBatchParams struct {
	MessagesTable string
	Acked         int64
	Before        time.Time
	Limit         int
}

// SQLTopicDeleteAckedBatch deletes one batch of acknowledged rows, lowest
// offsets first, and returns how many it deleted.
func (q *Queries) SQLTopicDeleteAckedBatch(ctx context.Context, params *SQLTopicDeleteAckedBatchParams) (int, error) {
	m := params.MessagesTable
	res, err := q.db.NewRaw(`DELETE FROM `+m+` WHERE "offset" IN (SELECT "offset" FROM `+m+
		` WHERE "offset" <= ? AND created_at < ? ORDER BY "offset" LIMIT ?)`, params.Acked, params.Before, params.Limit).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("delete from %s: %w", m, err)
	}
	// As before the data layer: a driver that cannot count counts none.
	n, _ := res.RowsAffected()
	return int(n), nil
}

// SQLTopicHeldBackParams counts the rows of MessagesTable older than
// Before that some group has not acknowledged (above offset Acked).
type SQLTopicHeldBackParams struct {
	MessagesTable string
	Acked         int64
	Before        time.Time
}

func (q *Queries) SQLTopicCountHeldBack(ctx context.Context, params *SQLTopicHeldBackParams) (int, error) {
	var waiting int
	if err := q.db.NewRaw(`SELECT COUNT(*) FROM `+params.MessagesTable+` WHERE "offset" > ? AND created_at < ?`,
		params.Acked, params.Before).Scan(ctx, &waiting); err != nil {
		return 0, fmt.Errorf("count held back in %s: %w", params.MessagesTable, err)
	}
	return waiting, nil
}

// SQLTopicGroupsAtParams names the groups of OffsetsTable whose
// acknowledged offset is Acked.
type SQLTopicGroupsAtParams struct {
	OffsetsTable string
	Acked        int64
}

// SQLTopicGroupsAt lists the consumer groups at an offset, by name.
func (q *Queries) SQLTopicGroupsAt(ctx context.Context, params *SQLTopicGroupsAtParams) ([]string, error) {
	var groups []string
	if err := q.db.NewRaw(`SELECT consumer_group FROM `+params.OffsetsTable+` WHERE offset_acked = ? ORDER BY consumer_group`,
		params.Acked).Scan(ctx, &groups); err != nil {
		return nil, fmt.Errorf("read %s: %w", params.OffsetsTable, err)
	}
	return groups, nil
}
