// Command servelatency times event → in-app notification on the embedded
// default as a user meets it: it starts `rfd serve` on a fresh SQLite file,
// registers a doctor through the API, opens her notification stream, then
// POSTs checkup events one at a time (20–50 ms apart). For each it reports
// the time from just before the POST to the notification's created_at (what
// the harness calls event → in-app notification committed) and to its
// arrival on the doctor's stream (what the portal shows):
//
//	go build -o /tmp/rfd . && go run ./test/bench/servelatency -rfd /tmp/rfd -events 200
//
// Unlike the harness, whose SQLite feed writes the topic table from another
// process, every hop here is inside the serve process.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	rfd := flag.String("rfd", "", "rfd binary (required; build one with go build -o /tmp/rfd .)")
	events := flag.Int("events", 200, "checkup events to time")
	addr := flag.String("addr", "127.0.0.1:18080", "listen address of the rfd serve it starts")
	flag.Parse()
	if *rfd == "" {
		log.Fatal("-rfd is required")
	}
	if err := run(*rfd, *addr, *events); err != nil {
		log.Fatal(err)
	}
}

func run(rfd, addr string, events int) error {
	dir, err := os.MkdirTemp("", "rfd-servelatency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	env := append(os.Environ(),
		"RFD_JWT_HS256_SECRET=dev-only-secret-at-least-32-bytes-long", "RFD_JWT_ISSUER=rfd-dev",
		"RFD_HTTP_ADDR="+addr, "RFD_LOG_LEVEL=warn",
		"RFD_DATABASE_URL=sqlite://"+filepath.Join(dir, "rfd.db"))
	base := "http://" + addr

	// Its log (a warning per e-mail delivery, no mail server being
	// configured) goes to a file, shown if the run fails.
	logFile, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	serve := exec.Command(rfd, "serve")
	serve.Env = env
	serve.Stdout, serve.Stderr = logFile, logFile
	if err := serve.Start(); err != nil {
		return fmt.Errorf("start rfd serve: %w", err)
	}
	defer func() {
		_ = serve.Process.Signal(os.Interrupt)
		_ = serve.Wait()
	}()
	err = measure(env, rfd, base, events, serve.Process.Pid)
	if err != nil {
		if b, readErr := os.ReadFile(logFile.Name()); readErr == nil {
			err = fmt.Errorf("%w\nrfd serve's log:\n%s", err, b)
		}
	}
	return err
}

func measure(env []string, rfd, base string, events, pid int) error {
	if err := waitReady(base, time.Minute); err != nil {
		return err
	}

	out, err := command(env, rfd, "apikey", "create", "--name", "servelatency", "--scopes", "events:user-created,events:checkup")
	if err != nil {
		return err
	}
	var key string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "key:" {
			key = f[1]
		}
	}
	if key == "" {
		return fmt.Errorf("no key in the output of rfd apikey create:\n%s", out)
	}
	if err := post(base, key, "/v1/events/user-created", `{"external_user_id":"dr-ann","user_type":"referring_doctor",
		"name":"Dr. Ann Example","email":"ann@clinic.example","locale":"en","time_zone":"UTC","active":true,
		"updated_at":"2026-12-01T09:00:00Z"}`); err != nil {
		return err
	}
	tok, err := token(env, rfd, "dr-ann")
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The stream refuses her (401) until her user-created event is consumed.
	var notes <-chan notification
	for try := 0; ; try++ {
		if notes, err = stream(ctx, base, tok); err == nil || try == 50 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	// The backlog (her welcome) first.
	for quiet := false; !quiet; {
		select {
		case <-notes:
		case <-time.After(time.Second):
			quiet = true
		}
	}

	var toCreated, toStream []time.Duration
	cpuBefore, err := cpuTime(pid)
	if err != nil {
		return err
	}
	wallBefore := time.Now()
	for i := range events {
		time.Sleep(time.Duration(20+rand.IntN(30)) * time.Millisecond)
		body := fmt.Sprintf(`{"event_type":"result_available","checkup_id":"CHK-LAT-%d",
			"patient":{"ref":"HN-%d","display_name":"Patient %d"},
			"referring_doctors":[{"external_user_id":"dr-ann","role":"primary"}],"occurred_at":%q,
			"result":{"version":1,"status":"final","critical":false,
			"tests":[{"code":"GLU","name":"Glucose","value":"5.1","unit":"mmol/L","flag":"N"}]}}`,
			i, i, i, time.Now().UTC().Format(time.RFC3339))
		start := time.Now()
		if err := post(base, key, "/v1/events/checkup-events", body); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		select {
		case n := <-notes:
			toCreated = append(toCreated, n.CreatedAt.Sub(start))
			toStream = append(toStream, n.arrived.Sub(start))
		case <-time.After(10 * time.Second):
			return fmt.Errorf("event %d: no notification on the stream within 10s", i)
		}
	}
	report("event -> created_at", toCreated)
	report("event -> stream", toStream)
	cpuAfter, err := cpuTime(pid)
	if err != nil {
		return err
	}
	fmt.Printf("rfd serve CPU: %.2f ms per event, %.0f%% of one core over the %.1f s of the run\n",
		float64((cpuAfter-cpuBefore).Microseconds())/1000/float64(events),
		100*(cpuAfter-cpuBefore).Seconds()/time.Since(wallBefore).Seconds(), time.Since(wallBefore).Seconds())
	return nil
}

func waitReady(base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("rfd serve not ready at %s within %s", base, timeout)
}

// command runs name and returns its standard output.
func command(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out), nil
}

// token returns a development token for doctor.
func token(env []string, rfd, doctor string) (string, error) {
	out, err := command(env, rfd, "token", "--doctor", doctor, "--ttl", "30m")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

func post(base, key, path, body string) error {
	req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, b)
	}
	return nil
}

type notification struct {
	CreatedAt time.Time `json:"created_at"`
	arrived   time.Time
}

// stream opens the doctor's notification stream and passes on each
// notification with the time it arrived.
func stream(ctx context.Context, base, token string) (<-chan notification, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/notifications/stream", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("open stream: %s", resp.Status)
	}
	notes := make(chan notification, 1000)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var n notification
			if err := json.Unmarshal([]byte(data), &n); err != nil {
				log.Printf("stream: %q: %v", data, err)
				continue
			}
			n.arrived = time.Now()
			notes <- n
		}
		if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
			log.Printf("stream ended: %v", err)
		}
	}()
	return notes, nil
}

// cpuTime is the user + system CPU time process pid has used (Linux).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th of them.
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time: short /proc/%d/stat", pid)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time: %w", err)
		}
		ticks += n
	}
	// USER_HZ is 100 on every Linux the service runs on.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

func report(what string, ds []time.Duration) {
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	fmt.Printf("%-20s n=%d p50 %.1f ms p90 %.1f ms p99 %.1f ms max %.1f ms\n", what, len(ds), at(0.50), at(0.90), at(0.99), at(1))
}
