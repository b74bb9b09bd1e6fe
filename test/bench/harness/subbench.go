package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The figures measured by the service's go benchmarks and by
// test/bench/servelatency, which the harness runs as subprocesses and reads
// from the lines they print.

// DeliveriesResult is BenchmarkDeliveries on PostgreSQL + Kafka, per
// channel.
type DeliveriesResult struct {
	PerChannel int `json:"deliveries_per_channel"`
	// Rate is deliveries/s by channel.
	Rate map[string]float64 `json:"per_second"`
	// Detail is the benchmark's CPU and rows per delivery, by channel.
	Detail map[string]string `json:"per_delivery,omitempty"`
}

// APIListResult is BenchmarkNotificationsList.
type APIListResult struct {
	Requests int `json:"requests_per_scenario_and_side"`
	// Notifications is the table size when not the benchmark's default.
	Notifications int `json:"notifications,omitempty"`
	// Ratios of p99, service / bare pgx handler running the same SQL.
	RatioFirst float64 `json:"p99_ratio_first_page"`
	RatioDeep  float64 `json:"p99_ratio_deep_page"`
	// P99Millis by scenario ("service first", "baseline deep", ...).
	P99Millis map[string]float64 `json:"p99_ms"`
}

// ServeLatencyResult is test/bench/servelatency: event -> in-app
// notification on `rfd serve` (SQLite, one process).
type ServeLatencyResult struct {
	Events          int     `json:"events"`
	CreatedP50      float64 `json:"created_p50_ms"`
	CreatedP99      float64 `json:"created_p99_ms"`
	StreamP50       float64 `json:"stream_p50_ms"`
	StreamP99       float64 `json:"stream_p99_ms"`
	CPUPerEventLine string  `json:"cpu,omitempty"`
}

// moduleRoot is the directory of this module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// goCommand runs `go args...` in the module's root with extra environment,
// calls line for each line it prints to stdout, and keeps its whole output
// in a log file, whose tail a failure shows.
func goCommand(ctx context.Context, label string, env []string, line func(string), args ...string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	logFile, err := os.CreateTemp("", "rfd-harness-"+label+"-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(logFile.Name())
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	logf("%s: go %s", label, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("go %s: %w", args[0], err)
	}
	sc := bufio.NewScanner(io.TeeReader(stdout, logFile))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line(sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		b, _ := os.ReadFile(logFile.Name())
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		return fmt.Errorf("%s: go %s: %w\n%s", label, strings.Join(args, " "), err, strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
	return nil
}

// targetChannels are the channels issue 19 sets a delivery rate for.
var targetChannels = []string{"in_app", "webhook", "email"}

var (
	deliveriesLine    = regexp.MustCompile(`^deliveries: (\S+) postgres\+kafka (\d+) in ([0-9.]+)s = ([0-9.]+)/s$`)
	deliveriesPerLine = regexp.MustCompile(`^deliveries: (\S+) postgres\+kafka per delivery: (.*)$`)
)

// measureDeliveries runs BenchmarkDeliveries on PostgreSQL + Kafka for the
// channels with a target, n deliveries each.
func measureDeliveries(ctx context.Context, o options) (*DeliveriesResult, error) {
	res := &DeliveriesResult{PerChannel: o.deliveries, Rate: map[string]float64{}, Detail: map[string]string{}}
	err := goCommand(ctx, "deliveries", []string{"RFD_TEST_DATABASE_URL=" + o.adminURL, "RFD_BENCH_DELIVERIES=" + strconv.Itoa(o.deliveries)},
		func(l string) {
			if m := deliveriesLine.FindStringSubmatch(l); m != nil {
				// Each channel's line comes again in the closing summary.
				if rate, err := strconv.ParseFloat(m[4], 64); err == nil && res.Rate[m[1]] == 0 {
					res.Rate[m[1]] = rate
					logf("%s", l)
				}
			} else if m := deliveriesPerLine.FindStringSubmatch(l); m != nil {
				res.Detail[m[1]] = m[2]
			}
		},
		"test", "./internal/delivery", "-run", "^$", "-bench", `^BenchmarkDeliveries$/^postgres\+kafka$/^(`+strings.Join(targetChannels, "|")+`)$`,
		"-benchtime", "1x", "-timeout", "40m")
	if err != nil {
		return nil, err
	}
	for _, ch := range targetChannels {
		if _, ok := res.Rate[ch]; !ok {
			return nil, fmt.Errorf("deliveries: BenchmarkDeliveries printed no rate for %s on postgres+kafka", ch)
		}
	}
	return res, nil
}

var (
	listRatioLine = regexp.MustCompile(`^notifications-list: p99 service/baseline \(same SQL\): first ([0-9.]+)x, deep ([0-9.]+)x`)
	listP99Line   = regexp.MustCompile(`^notifications-list: (\S+ (?:first|deep))\s+\d+ req .* p99\s+([0-9.]+)ms$`)
)

// measureAPIList runs BenchmarkNotificationsList with n requests per
// scenario and side.
func measureAPIList(ctx context.Context, o options) (*APIListResult, error) {
	res := &APIListResult{Requests: o.apiRequests, P99Millis: map[string]float64{}}
	found := false
	env := []string{"RFD_TEST_DATABASE_URL=" + o.adminURL, "RFD_BENCH_REQUESTS=" + strconv.Itoa(o.apiRequests)}
	if o.apiNotifications > 0 {
		env = append(env, "RFD_BENCH_NOTIFICATIONS="+strconv.Itoa(o.apiNotifications))
		res.Notifications = o.apiNotifications
	}
	err := goCommand(ctx, "api-list", env,
		func(l string) {
			if m := listRatioLine.FindStringSubmatch(l); m != nil {
				res.RatioFirst, _ = strconv.ParseFloat(m[1], 64)
				res.RatioDeep, _ = strconv.ParseFloat(m[2], 64)
				found = true
				logf("%s", l)
			} else if m := listP99Line.FindStringSubmatch(l); m != nil {
				res.P99Millis[m[1]], _ = strconv.ParseFloat(m[2], 64)
			} else if strings.HasPrefix(l, "notifications-list: seeded") {
				logf("%s", l)
			}
		},
		"test", "./test/bench", "-run", "^$", "-bench", "^BenchmarkNotificationsList$", "-benchtime", "1x", "-timeout", "30m")
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("api-list: BenchmarkNotificationsList printed no p99 ratio")
	}
	return res, nil
}

var serveLine = regexp.MustCompile(`^event -> (created_at|stream)\s+n=(\d+) p50 ([0-9.]+) ms p90 [0-9.]+ ms p99 ([0-9.]+) ms`)

// measureServeLatency runs test/bench/servelatency on bin: n checkup events
// POSTed to `rfd serve`, event -> notification committed and -> on the
// doctor's stream.
func measureServeLatency(ctx context.Context, o options, bin string) (*ServeLatencyResult, error) {
	res := &ServeLatencyResult{Events: o.serveEvents}
	seen := 0
	addr := "127.0.0.1:" + strconv.Itoa(20000+rand.IntN(20000))
	err := goCommand(ctx, "servelatency", nil, func(l string) {
		if m := serveLine.FindStringSubmatch(l); m != nil {
			p50, _ := strconv.ParseFloat(m[3], 64)
			p99, _ := strconv.ParseFloat(m[4], 64)
			if m[1] == "created_at" {
				res.CreatedP50, res.CreatedP99 = p50, p99
			} else {
				res.StreamP50, res.StreamP99 = p50, p99
			}
			seen++
			logf("servelatency: %s", l)
		} else if strings.HasPrefix(l, "rfd serve CPU:") {
			res.CPUPerEventLine = l
			logf("servelatency: %s", l)
		}
	}, "run", "./test/bench/servelatency", "-rfd", bin, "-events", strconv.Itoa(o.serveEvents), "-addr", addr)
	if err != nil {
		return nil, err
	}
	if seen != 2 {
		return nil, fmt.Errorf("servelatency printed %d of its 2 latency lines", seen)
	}
	return res, nil
}
