package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pgServer is a PostgreSQL instance of the test's own, initdb'd into a
// temporary directory from the installed server binaries and listening on
// its own loopback port, so stopping it disturbs nothing else. Tests run
// as root; the server runs as the postgres user.
type pgServer struct {
	bin  string // directory of initdb, pg_ctl, postgres
	dir  string
	data string
	port int
	asPG bool // run the server's commands as the postgres user
}

// startPostgres initdb's and starts a server; it is stopped and removed
// when the test ends.
func startPostgres(t testing.TB) *pgServer {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		t.Fatal("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (scripts/test installs them)")
	}
	s := &pgServer{bin: filepath.Dir(bins[len(bins)-1]), port: freePort(t), asPG: os.Geteuid() == 0}
	dir, err := os.MkdirTemp("", "rfd-chaos-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir, s.data = dir, filepath.Join(dir, "data")
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if s.asPG {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("tests run as root and need the postgres user to run their own server: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	s.cmd(t, "initdb", "-D", s.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
	s.start(t)
	t.Cleanup(func() { _ = s.run("pg_ctl", "-D", s.data, "stop", "-m", "immediate", "-w") })
	return s
}

// URL is the server's postgres database.
func (s *pgServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

func (s *pgServer) start(t testing.TB) {
	t.Helper()
	if err := s.startErr(); err != nil {
		t.Fatal(err)
	}
}

// startErr starts the (stopped) server and waits until it accepts
// connections.
func (s *pgServer) startErr() error {
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off -c max_connections=200", s.port, s.dir)
	return s.run("pg_ctl", "-D", s.data, "-o", opts, "-l", filepath.Join(s.dir, "server.log"), "-w", "start")
}

// stop stops the server the fast way: sessions are cut, nothing waits.
func (s *pgServer) stop() error {
	return s.run("pg_ctl", "-D", s.data, "-m", "fast", "-w", "stop")
}

func (s *pgServer) cmd(t testing.TB, name string, args ...string) {
	t.Helper()
	if err := s.run(name, args...); err != nil {
		t.Fatal(err)
	}
}

func (s *pgServer) run(name string, args ...string) error {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.asPG {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
