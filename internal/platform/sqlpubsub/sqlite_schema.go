package sqlpubsub

import (
	stdsql "database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// SQLiteSchema is the sql.SchemaAdapter of watermill-sql for SQLite, which
// watermill-sql does not ship. It mirrors DefaultMySQLSchema: one table per
// topic, an auto-incrementing offset, and a SELECT of the next batch above
// the consumer group's acked offset.
//
// Offsets are assigned in commit order: SQLite has a single writer, the
// AUTOINCREMENT value is taken inside the writing transaction and no other
// transaction can insert until that one commits, so a reader can never see
// offset N+1 committed while N is still in flight. That is the gap PostgreSQL
// closes with transaction_id (xid8) and pg_snapshot_xmin; SQLite needs none
// of it, and a plain "offset > acked" query loses nothing.
//
// SQLiteSchema only produces queries. The exclusivity of a consumer group
// (FOR UPDATE on PostgreSQL) comes from SQLiteSubscriberBeginner, which a
// subscriber on SQLite must use.
type SQLiteSchema struct {
	// GenerateMessagesTableName overrides the messages table name, which is
	// "watermill_<topic>" (quoted) by default.
	GenerateMessagesTableName func(topic string) string

	// SubscribeBatchSize is the number of messages read by one query.
	// Messages of a batch not yet acked when the subscriber stops are
	// delivered again, so a higher value means more redelivery after a
	// crash. Default 100.
	SubscribeBatchSize int
}

var _ sql.SchemaAdapter = SQLiteSchema{}

// SchemaInitializingQueries creates the topic's messages table.
//
// AUTOINCREMENT (rather than a bare INTEGER PRIMARY KEY) guarantees an offset
// is never reused, even after the newest rows are deleted by a cleanup: a
// reused offset at or below a group's acked offset would be skipped silently.
func (s SQLiteSchema) SchemaInitializingQueries(params sql.SchemaInitializingQueriesParams) ([]sql.Query, error) {
	createMessagesTable := strings.Join([]string{
		`CREATE TABLE IF NOT EXISTS ` + s.MessagesTable(params.Topic) + ` (`,
		`"offset" INTEGER PRIMARY KEY AUTOINCREMENT,`,
		`"uuid" TEXT NOT NULL,`,
		`"created_at" TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,`,
		`"payload" BLOB,`,
		`"metadata" TEXT`,
		`)`,
	}, "\n")
	return []sql.Query{{Query: createMessagesTable}}, nil
}

// InsertQuery inserts msgs in one statement, so they get consecutive offsets
// in the order given.
func (s SQLiteSchema) InsertQuery(params sql.InsertQueryParams) (sql.Query, error) {
	if len(params.Msgs) == 0 {
		return sql.Query{}, fmt.Errorf("insert into topic %s: no messages", params.Topic)
	}
	query := fmt.Sprintf(
		`INSERT INTO %s ("uuid", "payload", "metadata") VALUES %s`,
		s.MessagesTable(params.Topic),
		strings.TrimSuffix(strings.Repeat(`(?,?,?),`, len(params.Msgs)), ","),
	)

	args := make([]any, 0, 3*len(params.Msgs))
	for _, msg := range params.Msgs {
		metadata, err := json.Marshal(msg.Metadata)
		if err != nil {
			return sql.Query{}, fmt.Errorf("marshal metadata of message %s: %w", msg.UUID, err)
		}
		// metadata goes in as a string so SQLite stores TEXT (usable by its
		// JSON functions); a []byte would be stored as a BLOB whatever the
		// column's declared type.
		args = append(args, msg.UUID, []byte(msg.Payload), string(metadata))
	}
	return sql.Query{Query: query, Args: args}, nil
}

// SelectQuery returns the next batch above the group's acked offset.
func (s SQLiteSchema) SelectQuery(params sql.SelectQueryParams) (sql.Query, error) {
	next, err := params.OffsetsAdapter.NextOffsetQuery(sql.NextOffsetQueryParams{
		Topic:         params.Topic,
		ConsumerGroup: params.ConsumerGroup,
	})
	if err != nil {
		return sql.Query{}, fmt.Errorf("next offset query: %w", err)
	}
	query := `SELECT "offset", "uuid", "payload", "metadata" FROM ` + s.MessagesTable(params.Topic) +
		` WHERE "offset" > (` + next.Query + `) ORDER BY "offset" ASC LIMIT ` + fmt.Sprint(s.batchSize())
	return sql.Query{Query: query, Args: next.Args}, nil
}

// UnmarshalMessage turns a row of SelectQuery into a message.
func (s SQLiteSchema) UnmarshalMessage(params sql.UnmarshalMessageParams) (sql.Row, error) {
	var r sql.Row
	var metadata stdsql.NullString
	if err := params.Row.Scan(&r.Offset, &r.UUID, &r.Payload, &metadata); err != nil {
		return sql.Row{}, fmt.Errorf("scan message row: %w", err)
	}

	msg := message.NewMessage(string(r.UUID), r.Payload)
	if metadata.Valid {
		r.Metadata = []byte(metadata.String)
		if err := json.Unmarshal(r.Metadata, &msg.Metadata); err != nil {
			return sql.Row{}, fmt.Errorf("unmarshal metadata of message %s: %w", msg.UUID, err)
		}
	}
	r.Msg = msg
	return r, nil
}

// SubscribeIsolationLevel is the default: every SQLite transaction is
// serializable anyway, and SQLiteSubscriberBeginner runs the subscriber's
// statements without a transaction.
func (s SQLiteSchema) SubscribeIsolationLevel() stdsql.IsolationLevel {
	return stdsql.LevelDefault
}

// MessagesTable is the quoted name of the topic's messages table. Topic names
// are validated by watermill-sql (letters, digits and -$:._), so quoting
// cannot be escaped from.
func (s SQLiteSchema) MessagesTable(topic string) string {
	if s.GenerateMessagesTableName != nil {
		return s.GenerateMessagesTableName(topic)
	}
	return fmt.Sprintf(`"watermill_%s"`, topic)
}

func (s SQLiteSchema) batchSize() int {
	if s.SubscribeBatchSize <= 0 {
		return 100
	}
	return s.SubscribeBatchSize
}

// SQLiteOffsetsAdapter is the sql.OffsetsAdapter of watermill-sql for SQLite:
// one row per consumer group holding the last acked offset.
//
// Unlike the PostgreSQL and MySQL adapters it takes no row lock (SQLite has
// none): the consumer group is made exclusive by SQLiteSubscriberBeginner's
// in-process lock. So there is no "zero offsets" row to lock before
// subscribing and no consumed-message query to provoke deadlocks.
type SQLiteOffsetsAdapter struct {
	// GenerateMessagesOffsetsTableName overrides the offsets table name,
	// which is "watermill_offsets_<topic>" (quoted) by default.
	GenerateMessagesOffsetsTableName func(topic string) string
}

var _ sql.OffsetsAdapter = SQLiteOffsetsAdapter{}

// SchemaInitializingQueries creates the topic's offsets table.
func (a SQLiteOffsetsAdapter) SchemaInitializingQueries(params sql.OffsetsSchemaInitializingQueriesParams) ([]sql.Query, error) {
	// NOT NULL on the key because SQLite, for historical reasons, lets a
	// non-INTEGER PRIMARY KEY column hold NULLs.
	return []sql.Query{{Query: `CREATE TABLE IF NOT EXISTS ` + a.MessagesOffsetsTable(params.Topic) + ` (
		consumer_group TEXT NOT NULL PRIMARY KEY,
		offset_acked INTEGER NOT NULL
	)`}}, nil
}

// AckMessageQuery stores the offset of the last acked message of the batch.
func (a SQLiteOffsetsAdapter) AckMessageQuery(params sql.AckMessageQueryParams) (sql.Query, error) {
	query := `INSERT INTO ` + a.MessagesOffsetsTable(params.Topic) + ` (consumer_group, offset_acked) VALUES (?, ?)
		ON CONFLICT (consumer_group) DO UPDATE SET offset_acked = excluded.offset_acked`
	return sql.Query{Query: query, Args: []any{params.ConsumerGroup, params.LastRow.Offset}}, nil
}

// NextOffsetQuery returns the group's acked offset, 0 for a new group.
func (a SQLiteOffsetsAdapter) NextOffsetQuery(params sql.NextOffsetQueryParams) (sql.Query, error) {
	return sql.Query{
		Query: `SELECT COALESCE((SELECT offset_acked FROM ` + a.MessagesOffsetsTable(params.Topic) +
			` WHERE consumer_group = ?), 0)`,
		Args: []any{params.ConsumerGroup},
	}, nil
}

// ConsumedMessageQuery is empty: it exists for MySQL's deadlock detection,
// which SQLite's in-process lock makes unnecessary.
func (a SQLiteOffsetsAdapter) ConsumedMessageQuery(sql.ConsumedMessageQueryParams) (sql.Query, error) {
	return sql.Query{}, nil
}

// BeforeSubscribingQueries is empty: there is no row lock that needs a row.
func (a SQLiteOffsetsAdapter) BeforeSubscribingQueries(sql.BeforeSubscribingQueriesParams) ([]sql.Query, error) {
	return nil, nil
}

// MessagesOffsetsTable is the quoted name of the topic's offsets table.
func (a SQLiteOffsetsAdapter) MessagesOffsetsTable(topic string) string {
	if a.GenerateMessagesOffsetsTableName != nil {
		return a.GenerateMessagesOffsetsTableName(topic)
	}
	return fmt.Sprintf(`"watermill_offsets_%s"`, topic)
}
