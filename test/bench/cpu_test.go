package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuUse is CPU time spent during a timed section: by this process (the
// consumer, kfake and the producer side of the forwarder all run in it),
// and by every PostgreSQL server process on the host (which includes other
// databases' work if anything else uses the server at the same time), plus
// the host's load average at the end. On a shared machine the rates move
// with the load; the CPU per event moves much less.
type cpuUse struct {
	self, postgres time.Duration
	load           string
	db             dbStats
}

func (c cpuUse) perEvent(n int) string {
	per := func(d time.Duration) string {
		return fmt.Sprintf("%.0fµs", float64(d.Microseconds())/float64(n))
	}
	f := func(v int64) string { return strconv.FormatFloat(float64(v)/float64(n), 'f', 2, 64) }
	return fmt.Sprintf("Go process %s + PostgreSQL %s, %s commits, %s rows inserted, %s updated, %s deleted, %s read (load average at end %s)",
		per(c.self), per(c.postgres), f(c.db.commits), f(c.db.inserted), f(c.db.updated), f(c.db.deleted), f(c.db.read), c.load)
}

// dbStats are the database's counters from pg_stat_database: they include
// everything running on that database, the outbox forwarder too.
type dbStats struct {
	commits, inserted, updated, deleted, read int64
}

func readDBStats(b *testing.B, db *sql.DB) dbStats {
	b.Helper()
	// A backend flushes its counters at most once a second while busy, and
	// up to 10s after it goes idle.
	time.Sleep(11 * time.Second)
	var s dbStats
	err := db.QueryRowContext(context.Background(), `SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, tup_returned + tup_fetched
FROM pg_stat_database WHERE datname = current_database()`).Scan(&s.commits, &s.inserted, &s.updated, &s.deleted, &s.read)
	if err != nil {
		b.Fatalf("pg_stat_database: %v", err)
	}
	return s
}

func (s dbStats) since(before dbStats) dbStats {
	return dbStats{
		commits:  s.commits - before.commits,
		inserted: s.inserted - before.inserted,
		updated:  s.updated - before.updated,
		deleted:  s.deleted - before.deleted,
		read:     s.read - before.read,
	}
}

// startProfile writes a CPU profile of the section up to the returned stop
// to path; an empty path profiles nothing.
func startProfile(b *testing.B, path string) (stop func()) {
	b.Helper()
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatalf("cpu profile (not together with -cpuprofile): %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

type cpuSample struct {
	self     time.Duration
	postgres map[int]time.Duration // by pid
}

func readCPU() cpuSample {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	s := cpuSample{
		self:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		postgres: map[int]time.Duration{},
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15), in clock ticks.
		line := string(raw)
		open, closing := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
		if open < 0 || closing < open || line[open+1:closing] != "postgres" {
			continue
		}
		fields := strings.Fields(line[closing+1:])
		if len(fields) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		pid, _ := strconv.Atoi(strings.TrimSpace(line[:open]))
		s.postgres[pid] = time.Duration(utime+stime) * (time.Second / 100) // USER_HZ
	}
	return s
}

// since is the CPU used from before to s; PostgreSQL processes that started
// in between count from zero, those that exited are lost.
func (s cpuSample) since(before cpuSample) cpuUse {
	u := cpuUse{self: s.self - before.self}
	for pid, t := range s.postgres {
		u.postgres += t - before.postgres[pid]
	}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(raw)); len(f) >= 3 {
			u.load = strings.Join(f[:3], " ")
		}
	}
	return u
}

// tableReads lists the tables of db that read the most rows (sequential
// scans and index fetches, from pg_stat_user_tables), per event.
func tableReads(b *testing.B, db *sql.DB, n int) string {
	b.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT relname, seq_scan, seq_tup_read, COALESCE(idx_scan, 0), COALESCE(idx_tup_fetch, 0)
FROM pg_stat_user_tables ORDER BY seq_tup_read + COALESCE(idx_tup_fetch, 0) DESC LIMIT 6`)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		var seqScans, seqRows, idxScans, idxRows int64
		if err := rows.Scan(&name, &seqScans, &seqRows, &idxScans, &idxRows); err != nil {
			return err.Error()
		}
		out = append(out, fmt.Sprintf("%s %.1f (%.2f seq scans reading %.1f, %.2f index scans fetching %.1f)", name,
			float64(seqRows+idxRows)/float64(n), float64(seqScans)/float64(n), float64(seqRows)/float64(n),
			float64(idxScans)/float64(n), float64(idxRows)/float64(n)))
	}
	return strings.Join(out, "; ")
}
