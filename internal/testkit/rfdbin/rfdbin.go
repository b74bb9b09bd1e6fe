// Package rfdbin builds the rfd binary for tests exactly as the Dockerfile
// builds it (same environment, flags and package), so the process the
// tests run is the one the image ships.
package rfdbin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattn/go-shellwords"
)

// BuildCommand is the `go build` of the Dockerfile's build stage: the
// environment assignments before `go`, and the arguments after `build`
// with the -o flag and its value removed.
type BuildCommand struct {
	Env  []string
	Args []string
	// Output is the -o value, Line the shell line as written.
	Output string
	Line   string
}

// Root is the repository root (where go.mod is).
func Root() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("rfdbin: no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", ".."), nil
}

// ParseDockerfile finds the one `RUN ... go build` line of the Dockerfile.
func ParseDockerfile(dockerfile []byte) (BuildCommand, error) {
	var found []BuildCommand
	sc := bufio.NewScanner(bytes.NewReader(dockerfile))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "RUN ")
		if !ok || !strings.Contains(rest, "go build") {
			continue
		}
		bc := BuildCommand{Line: rest}
		fields, err := shellwords.Parse(rest)
		if err != nil {
			return BuildCommand{}, fmt.Errorf("rfdbin: %q: %w", line, err)
		}
		i := 0
		for ; i < len(fields) && strings.Contains(fields[i], "="); i++ {
			bc.Env = append(bc.Env, fields[i])
		}
		if i+1 >= len(fields) || fields[i] != "go" || fields[i+1] != "build" {
			return BuildCommand{}, fmt.Errorf("rfdbin: unexpected build line %q", line)
		}
		args := fields[i+2:]
		for j := 0; j < len(args); j++ {
			if args[j] == "-o" && j+1 < len(args) {
				bc.Output = args[j+1]
				j++
				continue
			}
			bc.Args = append(bc.Args, args[j])
		}
		found = append(found, bc)
	}
	if len(found) == 1 && found[0].Output == "" {
		return BuildCommand{}, errors.New("rfdbin: the Dockerfile's go build has no -o")
	}
	if len(found) != 1 {
		return BuildCommand{}, fmt.Errorf("rfdbin: want one `RUN go build` line in the Dockerfile, found %d", len(found))
	}
	return found[0], nil
}

var (
	once    sync.Once
	binPath string
	binErr  error
)

// Build builds the binary once per test process and returns its path.
func Build(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the fast tier runs no rfd subprocess; scripts/test runs this")
	}
	once.Do(func() {
		binPath, binErr = build()
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func build() (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return "", err
	}
	bc, err := ParseDockerfile(df)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "rfd-bin-")
	if err != nil {
		return "", err
	}
	// The Dockerfile's own line, run by the shell as docker would, with
	// only its output path replaced.
	out := filepath.Join(dir, "rfd")
	line := strings.Replace(bc.Line, "-o "+bc.Output, `-o "$RFD_BIN_OUT"`, 1)
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "RFD_BIN_OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", line, err, b)
	}
	return out, nil
}

// Cleanup removes the built binary; call it from TestMain after m.Run.
func Cleanup() {
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
}

// FreeAddr is a loopback address with a port that was free a moment ago,
// for a server a test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// WaitHTTP waits until a GET of u answers 200, or fails t after timeout.
func WaitHTTP(t testing.TB, u string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready within %s", u, timeout)
}

// Start starts bin with args in dir with exactly env, and returns the
// process, a channel that receives its exit error, and its combined
// output. The process is killed at the end of the test if still running.
func Start(t testing.TB, bin, dir string, env []string, args ...string) (*exec.Cmd, <-chan error, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return cmd, exited, &out
}
