package store

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"
)

// Batch gathers a transaction's writes so that, on PostgreSQL, they reach
// the server together when the batch is flushed: one multi-statement query
// in the simple protocol, one round trip instead of one per statement. The
// statements are formatted by bun exactly as bun would send them one by one.
// On SQLite, where a statement costs no round trip, each one runs as it is
// added, so reads later in the transaction see it at once.
//
// A write whose result the caller needs (rows affected, RETURNING) does not
// belong in a batch.
type Batch struct {
	tx  bun.Tx
	pg  bool
	gen schema.QueryGen
	buf []byte
	n   int
}

// NewBatch starts an empty batch on tx.
func NewBatch(tx bun.Tx) *Batch {
	return &Batch{tx: tx, pg: isPostgres(tx), gen: schema.NewQueryGen(tx.Dialect())}
}

// Postgres reports whether the batch defers its writes to Flush.
func (b *Batch) Postgres() bool { return b.pg }

// Exec adds a statement with bun-style ? placeholders.
func (b *Batch) Exec(ctx context.Context, query string, args ...any) error {
	if !b.pg {
		if _, err := b.tx.ExecContext(ctx, query, args...); err != nil {
			return err
		}
		return nil
	}
	b.sep()
	b.buf = b.gen.AppendQuery(b.buf, query, args...)
	return nil
}

// Add adds a bun query (an insert, update or delete built on the batch's
// transaction).
func (b *Batch) Add(ctx context.Context, q bun.Query) error {
	if !b.pg {
		if _, err := q.(interface {
			Exec(context.Context, ...any) (sql.Result, error)
		}).Exec(ctx); err != nil {
			return err
		}
		return nil
	}
	b.sep()
	out, err := q.AppendQuery(b.gen, b.buf)
	if err != nil {
		return fmt.Errorf("batch: format query: %w", err)
	}
	b.buf = out
	return nil
}

func (b *Batch) sep() {
	if b.n > 0 {
		b.buf = append(b.buf, ";\n"...)
	}
	b.n++
}

// Flush sends the gathered statements and empties the batch.
func (b *Batch) Flush(ctx context.Context) error {
	if b.n == 0 {
		return nil
	}
	query := string(b.buf)
	b.buf, b.n = b.buf[:0], 0
	// No arguments: pgx sends the text as one simple-protocol query, which
	// PostgreSQL runs statement by statement inside the transaction.
	if _, err := b.tx.Tx.ExecContext(ctx, query); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	return nil
}

// QueryContext runs a read with bun-style ? placeholders. On PostgreSQL
// the arguments are sent as bind parameters of a constant statement, which
// pgx prepares once per connection and PostgreSQL plans once; bun would
// otherwise inline them, making every call a new statement to parse, plan,
// prepare and deallocate. On SQLite bun formats the query as usual.
func QueryContext(ctx context.Context, tx bun.Tx, query string, args ...any) (*sql.Rows, error) {
	if isPostgres(tx) {
		return tx.Tx.QueryContext(ctx, dollarPlaceholders(query), args...)
	}
	return tx.QueryContext(ctx, query, args...)
}

// ExecContext is QueryContext for a write whose result the caller needs.
func ExecContext(ctx context.Context, tx bun.Tx, query string, args ...any) (sql.Result, error) {
	if isPostgres(tx) {
		return tx.Tx.ExecContext(ctx, dollarPlaceholders(query), args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

func isPostgres(tx bun.Tx) bool {
	return tx.Dialect().Name().String() == "pg"
}

var rewritten sync.Map // query with ? → query with $n

// dollarPlaceholders turns bun's ? placeholders into PostgreSQL's $1, $2…
// The queries it is given are constants of this module, with no ? inside
// literals or identifiers.
func dollarPlaceholders(query string) string {
	if q, ok := rewritten.Load(query); ok {
		return q.(string)
	}
	var sb strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(n))
			continue
		}
		sb.WriteRune(r)
	}
	q := sb.String()
	rewritten.Store(query, q)
	return q
}

// Select runs a constant query with ? placeholders and scans its rows into
// dest as bun would (a pointer to a slice of models, or to one model, which
// gets sql.ErrNoRows when there is no row). On PostgreSQL the arguments are
// bind parameters, so pgx prepares the statement once per connection and
// the server plans it once, as for QueryContext; on SQLite bun formats it.
func Select(ctx context.Context, db bun.IDB, dest any, query string, args ...any) error {
	raw := db.NewRaw(query, args...)
	if db.Dialect().Name().String() != "pg" {
		return raw.Scan(ctx, dest)
	}
	q := dollarPlaceholders(query)
	var (
		rows *sql.Rows
		err  error
	)
	switch d := db.(type) {
	case *bun.DB:
		rows, err = d.DB.QueryContext(ctx, q, args...)
	case bun.Tx:
		rows, err = d.Tx.QueryContext(ctx, q, args...)
	case bun.Conn:
		rows, err = d.Conn.QueryContext(ctx, q, args...)
	default:
		return raw.Scan(ctx, dest)
	}
	if err != nil {
		return err
	}
	bdb := raw.DB()
	if reflect.TypeOf(dest).Elem().Kind() == reflect.Slice {
		return bdb.ScanRows(ctx, rows, dest)
	}
	defer func() { _ = rows.Close() }()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := bdb.ScanRow(ctx, rows, dest); err != nil {
		return err
	}
	return rows.Close()
}
