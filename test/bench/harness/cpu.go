package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/uptrace/bun"
)

// procCPU is the user + system CPU time of process pid so far, from
// /proc/pid/stat (fields 14 and 15, in USER_HZ ticks, 100 on every Linux
// the harness runs on).
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	_, d, err := parseStat(string(raw))
	return d, err
}

// parseStat reads the command name and the CPU time of a /proc/pid/stat
// line; the name is in parentheses and may hold spaces.
func parseStat(line string) (string, time.Duration, error) {
	open, closing := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || closing < open {
		return "", 0, fmt.Errorf("stat line %q", line)
	}
	fields := strings.Fields(line[closing+1:])
	if len(fields) < 13 {
		return "", 0, fmt.Errorf("stat line %q", line)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return "", 0, fmt.Errorf("stat line %q: %w", line, err)
		}
		ticks += n
	}
	return line[open+1 : closing], time.Duration(ticks) * 10 * time.Millisecond, nil
}

// postgresCPU is the CPU time of every PostgreSQL server process on the
// host, by pid. On a shared server it includes other databases' work.
func postgresCPU() map[int]time.Duration {
	out := map[int]time.Duration{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		name, d, err := parseStat(string(raw))
		if err != nil || name != "postgres" {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if err != nil {
			continue
		}
		out[pid] = d
	}
	return out
}

// selfCPU is this process's CPU time: the Kafka broker (kfake), the
// feeds, the hand-written pipelines and the polling all run in it.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures the CPU time processes use between its start and a
// read: named rfd roles, PostgreSQL (all server processes on the host; one
// that exits in between is lost, one that starts counts from zero) and
// this process.
type cpuMeter struct {
	roles    map[string]*role
	before   map[string]time.Duration
	postgres map[int]time.Duration
	self     time.Duration
	wall     time.Time
	// db, when set, is a connection of the harness to the database under
	// measure: read counts its backends apart (harnessApp's excluded).
	db *bun.DB
}

// harnessApp is the application_name of the harness's own connections,
// whose backends (seeding, polls) are not the service's work.
const harnessApp = "rfd-harness"

// harnessURL is dbURL for the harness's own connections.
func harnessURL(dbURL string) string {
	if !strings.HasPrefix(dbURL, "postgres") {
		return dbURL
	}
	sep := "?"
	if strings.Contains(dbURL, "?") {
		sep = "&"
	}
	return dbURL + sep + "application_name=" + harnessApp
}

// watchDB makes read count the backends of db's database, those of the
// harness's own connections excepted.
func (m *cpuMeter) watchDB(db *bun.DB) { m.db = db }

func startCPU(roles map[string]*role) (*cpuMeter, error) {
	m := &cpuMeter{roles: roles, before: map[string]time.Duration{}, postgres: postgresCPU(), self: selfCPU(), wall: time.Now()}
	for name, r := range roles {
		d, err := procCPU(r.cmd.Process.Pid)
		if err != nil {
			return nil, err
		}
		m.before[name] = d
	}
	return m, nil
}

// CPUUse is the CPU seconds used over a section, by process.
type CPUUse struct {
	WallSeconds float64 `json:"wall_s"`
	// Roles are the rfd subprocesses, by role.
	Roles map[string]float64 `json:"roles_s"`
	// Postgres is every PostgreSQL server process on the host.
	Postgres float64 `json:"postgres_s"`
	// PostgresDB is the backends of the database under measure alive at
	// the end (the harness's own excepted); not the server's background
	// processes (WAL writer, checkpointer), nor other databases' work.
	PostgresDB *float64 `json:"postgres_database_backends_s,omitempty"`
	// Harness is this process: kfake, the feeds, the baselines, the polls.
	Harness float64 `json:"harness_s"`
	Load    string  `json:"load_average_at_end"`
}

// read is the CPU used since the start. A role that has exited is read as
// its last state is lost: it counts as zero.
func (m *cpuMeter) read() CPUUse {
	u := CPUUse{WallSeconds: time.Since(m.wall).Seconds(), Roles: map[string]float64{}, Harness: (selfCPU() - m.self).Seconds(), Load: loadAverage()}
	for name, r := range m.roles {
		if d, err := procCPU(r.cmd.Process.Pid); err == nil {
			u.Roles[name] = (d - m.before[name]).Seconds()
		}
	}
	now := postgresCPU()
	for pid, d := range now {
		u.Postgres += (d - m.postgres[pid]).Seconds()
	}
	if m.db != nil {
		var pids []int
		err := m.db.NewRaw(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name <> ?`, harnessApp).
			Scan(context.Background(), &pids)
		if err == nil {
			var sum float64
			for _, pid := range pids {
				if d, ok := now[pid]; ok {
					sum += (d - m.postgres[pid]).Seconds()
				}
			}
			u.PostgresDB = &sum
		}
	}
	return u
}

// PostgresService is the PostgreSQL CPU seconds of the service's work:
// its database's backends when counted apart, else every server process.
func (u CPUUse) PostgresService() float64 {
	if u.PostgresDB != nil {
		return *u.PostgresDB
	}
	return u.Postgres
}

// RolesTotal is the CPU seconds of every role.
func (u CPUUse) RolesTotal() float64 {
	var t float64
	for _, s := range u.Roles {
		t += s
	}
	return t
}

// String is "worker 12.3 s (45%), ...": seconds and share of one core.
func (u CPUUse) String() string {
	pct := func(s float64) string { return fmt.Sprintf("%.1f s (%.0f%%)", s, 100*s/max(u.WallSeconds, 1e-9)) }
	var parts []string
	for _, name := range sortedKeys(u.Roles) {
		parts = append(parts, name+" "+pct(u.Roles[name]))
	}
	if u.PostgresDB != nil {
		parts = append(parts, "PostgreSQL backends of the database "+pct(*u.PostgresDB))
	}
	parts = append(parts, "PostgreSQL all server processes on the host "+pct(u.Postgres), "harness (kfake, polls) "+pct(u.Harness))
	return fmt.Sprintf("CPU over %.1f s (%% of one core): %s; load average at end %s", u.WallSeconds, strings.Join(parts, ", "), u.Load)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// cpuWindow meters the CPU of a maximum-rate run from the first inbox
// commit the harness sees to the last one, the span the rate is measured
// over: the processes' start-up and the consumer group's join are left
// out. roles are the service's processes (none for a pipeline in this
// process); db, when set, is the harness's connection to the run's
// PostgreSQL database.
type cpuWindow struct {
	roles map[string]*role
	db    *bun.DB
	meter *cpuMeter
	from  int
	err   error
}

// first starts the meter when from events are already in the inbox.
func (w *cpuWindow) first(from int) {
	w.from = from
	if w.meter, w.err = startCPU(w.roles); w.err == nil && w.db != nil {
		w.meter.watchDB(w.db)
	}
}

// set puts the CPU per event since first into s, n events in all; it
// leaves s without CPU figures if the meter never started.
func (w *cpuWindow) set(s *Side, n int) {
	if w.err != nil {
		logf("cpu: %v", w.err)
		return
	}
	if w.meter == nil || n-w.from <= 0 {
		return
	}
	s.setCPU(w.meter.read(), n-w.from)
}
