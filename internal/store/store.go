// Package store opens the service's database, PostgreSQL in production or an
// embedded SQLite file, as a bun.DB, and holds the inbox that makes every
// consumer idempotent.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"
)

// Open connects to the database named by rawURL (postgres://… or
// sqlite://PATH) and checks that it answers. A missing SQLite file is
// created: only `rfd serve` and `rfd migrate up` (and tests) open this way.
func Open(ctx context.Context, rawURL string) (*bun.DB, error) {
	return open(ctx, rawURL, true)
}

// OpenExisting is Open for everything that must not create a database: an
// operator command run from the wrong directory must fail naming the URL it
// tried, not work on a fresh empty SQLite file. PostgreSQL never creates a
// database on connect, so only SQLite differs.
func OpenExisting(ctx context.Context, rawURL string) (*bun.DB, error) {
	return open(ctx, rawURL, false)
}

// ErrNoDatabase is returned by OpenExisting for a SQLite file that does not
// exist.
var ErrNoDatabase = errors.New("does not exist")

func open(ctx context.Context, rawURL string, create bool) (*bun.DB, error) {
	var db *bun.DB
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		connector, err := openPostgres(rawURL)
		if err != nil {
			return nil, fmt.Errorf("open postgres %s: %w", Redact(rawURL), err)
		}
		sqldb := sql.OpenDB(connector)
		sqldb.SetMaxOpenConns(20)
		sqldb.SetMaxIdleConns(20)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
		db = bun.NewDB(sqldb, pgdialect.New())
	case strings.HasPrefix(rawURL, "sqlite:"):
		path := sqlitePath(rawURL)
		if path == "" {
			return nil, fmt.Errorf("open sqlite: %q names no file", rawURL)
		}
		dsn := SQLiteDSN(path)
		if create {
			if dir := filepath.Dir(path); dir != "." {
				if err := os.MkdirAll(dir, 0o750); err != nil {
					return nil, fmt.Errorf("open sqlite: create directory: %w", err)
				}
			}
		} else {
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("database %s (%s) %w: run `rfd migrate up` to create it, or point RFD_DATABASE_URL at the service's database",
					Redact(rawURL), absPath(path), ErrNoDatabase)
			}
			// mode=rw keeps SQLite itself from creating the file, should it
			// disappear between the check above and the first connection.
			dsn += "&mode=rw"
		}
		sqldb, err := sql.Open(sqliteshim.ShimName, dsn)
		if err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		// Writers queue on busy_timeout; a handful of connections is plenty
		// for one writer and the readers WAL lets run beside it.
		sqldb.SetMaxOpenConns(8)
		sqldb.SetMaxIdleConns(8)
		sqldb.SetConnMaxLifetime(0)
		db = bun.NewDB(sqldb, sqlitedialect.New())
	default:
		return nil, fmt.Errorf("open database: unsupported URL %q (want postgres:// or sqlite://)", Redact(rawURL))
	}

	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("ping database %s: %w", Redact(rawURL), err)
	}
	if IsSQLite(db) {
		if err := checkSQLitePragmas(ctx, db); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	return db, nil
}

// SQLiteDSN is the modernc DSN of the embedded database: WAL so readers never
// wait for the writer, a busy timeout so writers queue instead of failing,
// foreign keys on, and BEGIN IMMEDIATE so a write transaction takes the write
// lock up front instead of failing later with SQLITE_BUSY_SNAPSHOT.
func SQLiteDSN(path string) string {
	return "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(15000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

func checkSQLitePragmas(ctx context.Context, db *bun.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: read journal_mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: journal_mode is %q, want wal", mode)
	}
	var fk int
	if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("sqlite: read foreign_keys: %w", err)
	}
	if fk != 1 {
		return fmt.Errorf("sqlite: foreign_keys is off")
	}
	return nil
}

func sqlitePath(rawURL string) string {
	rest := strings.TrimPrefix(rawURL, "sqlite://")
	if rest == rawURL {
		rest = strings.TrimPrefix(rawURL, "sqlite:")
	}
	path, _, _ := strings.Cut(rest, "?")
	return path
}

func absPath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	return abs
}

// IsSQLite reports whether db is the embedded SQLite database.
func IsSQLite(db *bun.DB) bool {
	return db.Dialect().Name().String() == "sqlite"
}

// Redact is the URL without its password, for messages and logs.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	return u.Redacted()
}
