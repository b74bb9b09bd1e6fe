package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
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

// Prepend puts a statement with ? placeholders before those already in
// the batch (on SQLite it runs at once, like Exec).
func (b *Batch) Prepend(ctx context.Context, query string, args ...any) error {
	if !b.pg || b.n == 0 {
		return b.Exec(ctx, query, args...)
	}
	head := b.gen.AppendQuery(nil, query, args...)
	head = append(head, ";\n"...)
	b.buf = append(head, b.buf...)
	b.n++
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

func isPostgres(db bun.IDB) bool {
	return db.Dialect().Name() == dialect.PG
}
