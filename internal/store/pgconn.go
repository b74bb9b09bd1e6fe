package store

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// simpleQueries wraps pgx's database/sql connector so that a query without
// arguments (every query bun sends: bun inlines its arguments) runs in
// PostgreSQL's simple protocol, one round trip. pgx would otherwise prepare
// it as a named statement (a round trip), execute it (another) and, the
// text being new every time, evict and deallocate an older statement from
// its cache. Queries with arguments (watermill's, and the constant
// statements of QueryContext, ExecContext and Select) are unchanged:
// prepared once per connection (and planned for their arguments, see
// openPostgres).
type simpleQueries struct {
	driver.Connector
}

func (c simpleQueries) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	pc, ok := conn.(*stdlib.Conn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("postgres: unexpected driver connection %T", conn)
	}
	return simpleConn{pc}, nil
}

type simpleConn struct {
	*stdlib.Conn
}

var simpleProtocol = []driver.NamedValue{{Ordinal: 1, Value: pgx.QueryExecModeSimpleProtocol}}

func (c simpleConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if len(args) == 0 {
		args = simpleProtocol
	}
	return c.Conn.QueryContext(ctx, query, args)
}

// openPostgres opens the database/sql pool of rawURL through simpleQueries.
func openPostgres(rawURL string) (driver.Connector, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, err
	}
	// Prepared statements are planned for their arguments every time. A
	// generic plan, which PostgreSQL would otherwise settle on after five
	// executions, is costed on the table sizes of that moment: made while a
	// fresh deployment's tables are nearly empty, it scans them whole for
	// as long as the connection lives. Planning these small statements
	// costs far less than one such scan. A URL that sets plan_cache_mode
	// keeps its own.
	if _, set := cfg.RuntimeParams["plan_cache_mode"]; !set {
		cfg.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	return simpleQueries{stdlib.GetConnector(*cfg)}, nil
}
