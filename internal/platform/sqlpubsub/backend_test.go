package sqlpubsub_test

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
	"github.com/rfd-notify/rfd/internal/testkit/pgtest"
)

// Every test here runs against both databases (the river driver-suite idea):
// the SQL transport has to behave the same on the embedded SQLite file and on
// PostgreSQL.
type backend struct {
	name string
	open func(t testing.TB) *bun.DB
}

var backends = []backend{
	{name: "sqlite", open: openSQLite},
	{name: "postgres", open: openPostgres},
}

func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// sqliteDSN mirrors the service's DSN (store.SQLiteDSN): WAL, a busy timeout
// so writers queue, foreign keys, and BEGIN IMMEDIATE for write transactions.
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// openSQLite opens a new database file, checking that the pragmas the
// transport relies on took effect (a DSN typo would silently leave the
// rollback journal, where readers block the writer).
func openSQLite(t testing.TB) *bun.DB {
	t.Helper()
	sqldb, err := stdsql.Open(sqliteshim.ShimName, sqliteDSN(filepath.Join(t.TempDir(), "pubsub.db")))
	require.NoError(t, err)
	sqldb.SetMaxOpenConns(8) // as the service does
	db := bun.NewDB(sqldb, sqlitedialect.New())
	t.Cleanup(func() { _ = db.Close() })

	var mode string
	require.NoError(t, db.QueryRow("PRAGMA journal_mode").Scan(&mode))
	require.Equal(t, "wal", strings.ToLower(mode), "journal_mode")
	var busy int
	require.NoError(t, db.QueryRow("PRAGMA busy_timeout").Scan(&busy))
	require.Equal(t, 10000, busy, "busy_timeout")
	var fk int
	require.NoError(t, db.QueryRow("PRAGMA foreign_keys").Scan(&fk))
	require.Equal(t, 1, fk, "foreign_keys")
	return db
}

// openPostgres opens a fresh database of its own on the test server.
func openPostgres(t testing.TB) *bun.DB {
	t.Helper()
	sqldb, err := stdsql.Open("pgx", pgtest.NewDatabase(t))
	require.NoError(t, err)
	// Bounded so parallel tests (and other packages' tests) stay well under
	// the server's max_connections; subscribers queue for connections.
	sqldb.SetMaxOpenConns(10)
	db := bun.NewDB(sqldb, pgdialect.New())
	t.Cleanup(func() { _ = db.Close() })
	require.NoError(t, db.Ping())
	return db
}

// fastOptions keep the suite quick: watermill's defaults poll once a second.
var fastOptions = sqlpubsub.Options{
	PollInterval:   10 * time.Millisecond,
	ResendInterval: 10 * time.Millisecond,
}

func newPubSub(t testing.TB, db *bun.DB, logger watermill.LoggerAdapter) *sqlpubsub.PubSub {
	t.Helper()
	ps, err := sqlpubsub.New(db, logger, fastOptions)
	require.NoError(t, err)
	return ps
}

func pubSubPair(t testing.TB, ps *sqlpubsub.PubSub, consumerGroup string) (message.Publisher, message.Subscriber) {
	t.Helper()
	pub, err := ps.Publisher()
	require.NoError(t, err)
	sub, err := ps.Subscriber(consumerGroup)
	require.NoError(t, err)
	return pub, sub
}

func newTopic(prefix string) string {
	return prefix + "-" + watermill.NewShortUUID()
}

// recordingLogger is a watermill logger that remembers every error it is
// given, so tests can assert that the transport logged none. It prints
// everything when SQLPUBSUB_TEST_LOG is set. It never calls t.Log: watermill
// goroutines may still log after a test has finished.
type recordingLogger struct {
	rec     *errorRecord
	fields  watermill.LogFields
	verbose bool
}

type errorRecord struct {
	mu   sync.Mutex
	errs []string
}

func newRecordingLogger() recordingLogger {
	return recordingLogger{rec: &errorRecord{}, verbose: os.Getenv("SQLPUBSUB_TEST_LOG") != ""}
}

func (l recordingLogger) Errors() []string {
	l.rec.mu.Lock()
	defer l.rec.mu.Unlock()
	return append([]string(nil), l.rec.errs...)
}

func (l recordingLogger) Error(msg string, err error, fields watermill.LogFields) {
	line := fmt.Sprintf("%s: %v %v", msg, err, l.fields.Add(fields))
	l.rec.mu.Lock()
	l.rec.errs = append(l.rec.errs, line)
	l.rec.mu.Unlock()
	if l.verbose {
		log.Print("ERROR ", line)
	}
}

func (l recordingLogger) Info(msg string, fields watermill.LogFields)  { l.print("INFO", msg, fields) }
func (l recordingLogger) Debug(msg string, fields watermill.LogFields) { l.print("DEBUG", msg, fields) }
func (l recordingLogger) Trace(msg string, fields watermill.LogFields) { l.print("TRACE", msg, fields) }

func (l recordingLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return recordingLogger{rec: l.rec, fields: l.fields.Add(fields), verbose: l.verbose}
}

func (l recordingLogger) print(level, msg string, fields watermill.LogFields) {
	if l.verbose {
		log.Print(level, " ", msg, " ", l.fields.Add(fields))
	}
}

// receive waits for the next message on msgs.
func receive(t *testing.T, msgs <-chan *message.Message, timeout time.Duration) *message.Message {
	t.Helper()
	select {
	case msg, ok := <-msgs:
		require.True(t, ok, "messages channel closed")
		return msg
	case <-time.After(timeout):
		t.Fatalf("no message within %s", timeout)
		return nil
	}
}

// requireNothing asserts that no message arrives on msgs for a while (many
// poll intervals).
func requireNothing(t *testing.T, msgs <-chan *message.Message, wait time.Duration) {
	t.Helper()
	select {
	case msg, ok := <-msgs:
		if ok {
			t.Fatalf("unexpected message %s (payload %q)", msg.UUID, msg.Payload)
		}
	case <-time.After(wait):
	}
}

func countRows(t *testing.T, db *bun.DB, query string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRowContext(context.Background(), query).Scan(&n))
	return n
}
