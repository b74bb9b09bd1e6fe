package auth

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// Unavailable reports whether err means the database cannot be used right
// now (down, unreachable, closed, overloaded) rather than a bug: such a
// request is answered 503, and the client may retry. When the error itself
// does not say, the database is pinged.
func Unavailable(ctx context.Context, db *bun.DB, err error) bool {
	if err == nil {
		return false
	}
	var netErr net.Error
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr):
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{
		"database is closed", "connection refused", "broken pipe", "connection reset",
		"failed to connect", "conn closed", "database is locked", "sqlstate 57p0", // admin shutdown, cannot connect now
		"sqlstate 53300", // too many connections
		"the database system is", "no such host", "i/o timeout",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	if db == nil {
		return true
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	return db.PingContext(pctx) != nil
}

// storeError turns a database error met while authenticating into a 503
// when the database is unavailable, a 500 otherwise.
func storeError(ctx context.Context, db *bun.DB, err error) error {
	if Unavailable(ctx, db, err) {
		return &Error{Status: http.StatusServiceUnavailable, Detail: "the database is unavailable; retry shortly", cause: err}
	}
	return &Error{Status: http.StatusInternalServerError, Detail: "authentication failed unexpectedly", cause: err}
}
