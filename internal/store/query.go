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
)

// QueryContext runs a read with bun-style ? placeholders. On PostgreSQL
// the arguments are sent as bind parameters of a constant statement, which
// pgx prepares once per connection; bun would otherwise inline them,
// making every call a new statement to parse, prepare and deallocate. On SQLite bun formats the query as usual.
func QueryContext(ctx context.Context, tx bun.Tx, query string, args ...any) (*sql.Rows, error) {
	if isPostgres(tx) {
		return tx.Tx.QueryContext(ctx, dollarPlaceholders(query), args...)
	}
	return tx.QueryContext(ctx, query, args...)
}

// Repeat is n copies of a placeholder list such as "(?, ?)", separated by
// commas: the VALUES or IN list of a statement over n rows.
func Repeat(list string, n int) string {
	if n <= 0 {
		return ""
	}
	return list + strings.Repeat(", "+list, n-1)
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
// bind parameters, so pgx prepares the statement once per connection, as
// for QueryContext; on SQLite bun formats it.
func Select(ctx context.Context, db bun.IDB, dest any, query string, args ...any) error {
	raw := db.NewRaw(query, args...)
	if !isPostgres(db) {
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

// Scan scans the current row's columns into dest, in order.
type Scan func(dest ...any) error

// Rows runs a constant query with ? placeholders and calls row once per
// result row with the function that scans it into typed destinations.
// It is for the hot reads, where bun's reflective scanning is most of the
// cost: on PostgreSQL through a pool (*bun.DB) it runs on the connection's
// native pgx.Conn (prepared once per connection, binary results scanned
// without database/sql's conversions); in a transaction, and on SQLite,
// through database/sql.
func Rows(ctx context.Context, db bun.IDB, query string, args []any, row func(scan Scan) error) error {
	if isPostgres(db) {
		switch d := db.(type) {
		case *bun.DB:
			return nativeRows(ctx, d, dollarPlaceholders(query), args, row)
		case bun.Tx:
			rows, err := d.Tx.QueryContext(ctx, dollarPlaceholders(query), args...)
			if err != nil {
				return err
			}
			return eachRow(rows, row)
		}
	}
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	return eachRow(rows, row)
}

// nativeRows runs q on one pooled connection's pgx.Conn.
func nativeRows(ctx context.Context, db *bun.DB, q string, args []any, row func(scan Scan) error) error {
	conn, err := db.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(simpleConn)
		if !ok {
			return fmt.Errorf("postgres: unexpected driver connection %T", dc)
		}
		rows, err := sc.Conn.Conn().Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := row(rows.Scan); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

func eachRow(rows *sql.Rows, row func(scan Scan) error) error {
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}
