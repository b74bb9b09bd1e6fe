// Package pgtest gives each test its own throw-away PostgreSQL database on
// the server named by RFD_TEST_DATABASE_URL, so tests run in parallel without
// seeing each other's rows and leave nothing behind.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// DefaultURL is the local Debian cluster with trust auth, as on CI machines.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the server the test databases are created on.
func AdminURL() string {
	if u := os.Getenv("RFD_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// NewDatabase creates an empty database and returns its URL. The database is
// dropped when the test ends. A server that cannot be reached fails the test:
// the PostgreSQL path is the production path and must never be skipped quietly.
func NewDatabase(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the fast tier runs no PostgreSQL; scripts/test runs this")
	}
	admin := AdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("pgtest: open %s: %v", redact(admin), err)
	}
	defer db.Close()

	name := fmt.Sprintf("rfd_test_%d_%08x", time.Now().Unix(), rand.Uint32())
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database on %s (is PostgreSQL running? set RFD_TEST_DATABASE_URL): %v", redact(admin), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", admin)
		if err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})

	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest: parse %s: %v", redact(admin), err)
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	return u.Redacted()
}
