package lag

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
)

// SQLReader measures lag on watermill-sql topics (the SQL transport, and
// the outbox's forwarder topic on Kafka).
type SQLReader struct {
	db       *bun.DB
	messages func(topic string) string
	offsets  func(topic string) string
}

type messagesTabler interface{ MessagesTable(topic string) string }
type offsetsTabler interface{ MessagesOffsetsTable(topic string) string }

// NewSQLReader returns a reader over the tables of ps.
func NewSQLReader(db *bun.DB, ps *sqlpubsub.PubSub) (*SQLReader, error) {
	mt, ok := ps.SchemaAdapter().(messagesTabler)
	if !ok {
		return nil, fmt.Errorf("lag: schema adapter %T does not name its tables", ps.SchemaAdapter())
	}
	ot, ok := ps.OffsetsAdapter().(offsetsTabler)
	if !ok {
		return nil, fmt.Errorf("lag: offsets adapter %T does not name its tables", ps.OffsetsAdapter())
	}
	return &SQLReader{db: db, messages: mt.MessagesTable, offsets: ot.MessagesOffsetsTable}, nil
}

// Transport is "sql".
func (r *SQLReader) Transport() string { return "sql" }

// Read counts, per pair, the rows after the group's acked offset and the
// age of the oldest of them, computed by the database's own clock.
func (r *SQLReader) Read(ctx context.Context, pairs []Pair) ([]Lag, error) {
	age := `EXTRACT(EPOCH FROM (CURRENT_TIMESTAMP::timestamp - MIN(m.created_at)))`
	if r.db.Dialect().Name() == dialect.SQLite {
		age = `(julianday('now') - julianday(MIN(m.created_at))) * 86400.0`
	}
	var out []Lag
	for _, p := range pairs {
		q := `SELECT COUNT(*), COALESCE(` + age + `, 0) FROM ` + r.messages(p.Topic) + ` m
WHERE m."offset" > COALESCE((SELECT o.offset_acked FROM ` + r.offsets(p.Topic) + ` o WHERE o.consumer_group = ?), 0)`
		var n int64
		var secs float64
		if err := r.db.QueryRowContext(ctx, q, p.Group).Scan(&n, &secs); err != nil {
			if missingTable(err) {
				continue
			}
			return nil, fmt.Errorf("lag of %s on %s: %w", p.Group, p.Topic, err)
		}
		if n == 0 || secs < 0 {
			secs = 0
		}
		out = append(out, Lag{Pair: p, Messages: n, OldestAge: time.Duration(secs * float64(time.Second))})
	}
	return out, nil
}

// missingTable reports an error from a topic whose tables do not exist
// yet: nothing was ever published or subscribed there.
func missingTable(err error) bool {
	if err == sql.ErrNoRows {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "no such table") || strings.Contains(s, "does not exist") || strings.Contains(s, "42P01")
}
