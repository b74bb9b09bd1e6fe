package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/store"
)

// targetBroadcast is issue 19's target 3: a broadcast to 100,000 doctors
// (in-app) fully delivered within it.
const targetBroadcast = 60 * time.Second

// BroadcastResult is the broadcast phase's figures. Times are seconds from
// just before the POST that created the broadcast.
type BroadcastResult struct {
	Doctors     int     `json:"doctors"`
	SeedSeconds float64 `json:"seed_s"`
	// FanOutStarted is when the worker's fan-out took the broadcast up
	// (its started_at): up to RFD_BROADCAST_POLL_INTERVAL after the POST.
	FanOutStarted float64 `json:"fan_out_started_s"`
	// FanOutDone is when the last notification was made.
	FanOutDone float64 `json:"fan_out_done_s"`
	// FirstDelivered and Delivered are when the first and the last in-app
	// delivery had status delivered (their updated_at); Delivered is the
	// figure of the target.
	FirstDelivered float64 `json:"first_delivered_s"`
	Delivered      float64 `json:"delivered_s"`
	TargetSeconds  float64 `json:"target_s"`
	Met            bool    `json:"met"`
	// The fan-out's settings, the service's defaults unless the
	// environment sets them.
	ChunkSize   int     `json:"chunk_size"`
	PauseMillis float64 `json:"pause_ms"`
	PollMillis  float64 `json:"poll_ms"`
	// CPU is what each process used from the POST to the last delivery.
	CPU  CPUUse `json:"cpu"`
	Load string `json:"load_average_at_start"`
}

func (b *BroadcastResult) summary() string {
	return fmt.Sprintf("broadcast: %d doctors in-app delivered in %.1fs (target ≤ %.0f s) %s",
		b.Doctors, b.Delivered, b.TargetSeconds, met(b.Met))
}

func (b *BroadcastResult) split() string {
	chunks := (b.Doctors + b.ChunkSize - 1) / b.ChunkSize
	return fmt.Sprintf("broadcast: fan-out started at %.1fs, done at %.1fs (%d chunks of %d, %.0f ms pause between chunks = %.1fs of pauses); first delivery at %.1fs, all delivered at %.1fs; fan-out %.0f notifications/s, deliveries %.0f/s after the first",
		b.FanOutStarted, b.FanOutDone, chunks, b.ChunkSize, b.PauseMillis, float64(chunks-1)*b.PauseMillis/1000,
		b.FirstDelivered, b.Delivered, float64(b.Doctors)/max(b.FanOutDone-b.FanOutStarted, 1e-9),
		float64(b.Doctors)/max(b.Delivered-b.FirstDelivered, 1e-9))
}

// measureBroadcast creates a broadcast to n active doctors whose
// preferences send everything in-app only, through `rfd api`, on
// PostgreSQL + Kafka with the production roles as subprocesses (`rfd
// worker`: the fan-out and the outbox relay; `rfd consume
// send-notification`: the in-app deliveries), and times it until every
// doctor's in-app delivery is delivered.
func measureBroadcast(ctx context.Context, o options, bin string) (*BroadcastResult, error) {
	res := &BroadcastResult{Doctors: o.broadcastDoctors, TargetSeconds: targetBroadcast.Seconds(), Load: loadAverage()}
	cluster, err := newKafka()
	if err != nil {
		return nil, err
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	dbURL, drop, err := createDatabase(ctx, o.adminURL)
	if err != nil {
		return nil, err
	}
	defer drop()
	httpAddr := "127.0.0.1:" + strconv.Itoa(20000+rand.IntN(20000))
	env := append(os.Environ(), "RFD_DATABASE_URL="+dbURL, "RFD_TRANSPORT=kafka", "RFD_KAFKA_BROKERS="+strings.Join(brokers, ","),
		"RFD_LOG_LEVEL=warn", "RFD_HTTP_ADDR="+httpAddr)
	cfg, err := config.Load(nil)
	if err != nil {
		return nil, err
	}
	res.ChunkSize, res.PauseMillis, res.PollMillis = cfg.BroadcastChunkSize, float64(cfg.BroadcastPause.Milliseconds()), float64(cfg.BroadcastPollInterval.Milliseconds())

	if out, err := runCmd(bin, env, "migrate", "up"); err != nil {
		return nil, fmt.Errorf("migrate: %v\n%s", err, out)
	}
	db, err := store.Open(ctx, harnessURL(dbURL))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	seedStart := time.Now()
	if err := seedInAppDoctors(ctx, db, o.broadcastDoctors); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	res.SeedSeconds = time.Since(seedStart).Seconds()
	logf("broadcast: seeded %d doctors (in-app only) in %.1fs", o.broadcastDoctors, res.SeedSeconds)
	out, err := runCmd(bin, env, "apikey", "create", "--name", "harness-broadcast", "--scopes", "broadcasts:write")
	if err != nil {
		return nil, fmt.Errorf("apikey create: %v\n%s", err, out)
	}
	key := ""
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "key:" {
			key = f[1]
		}
	}
	if key == "" {
		return nil, fmt.Errorf("no key in the output of rfd apikey create:\n%s", out)
	}

	roles := map[string]*role{}
	for _, args := range [][]string{{"worker"}, {"consume", "send-notification"}, {"api"}} {
		r, err := startRole(bin, env, args...)
		if err != nil {
			return nil, err
		}
		defer r.stop()
		roles[strings.Join(args, " ")] = r
	}
	for _, r := range roles {
		if err := r.waitReady(ctx, 2*time.Minute); err != nil {
			return nil, err
		}
	}
	// A deployment's consumers are running when an operator broadcasts:
	// the consumer group's first join is not part of the figure.
	if err := waitGroupStable(ctx, brokers, cfg.ConsumerGroup(config.ConsumerSendNotification), time.Minute); err != nil {
		return nil, err
	}

	meter, err := startCPU(roles)
	if err != nil {
		return nil, err
	}
	meter.watchDB(db)
	t0 := time.Now()
	id, err := postBroadcast(ctx, "http://"+httpAddr, key)
	if err != nil {
		return nil, err
	}
	logf("broadcast %s: created", id)
	if err := waitBroadcast(ctx, db, id, o.broadcastDoctors, roles); err != nil {
		return nil, err
	}
	res.CPU = meter.read()
	if err := broadcastTimes(ctx, db, id, o.broadcastDoctors, t0, res); err != nil {
		return nil, err
	}
	if err := checkProgress(ctx, "http://"+httpAddr, key, id, o.broadcastDoctors); err != nil {
		return nil, err
	}
	res.Met = res.Delivered <= res.TargetSeconds
	logf("%s", res.summary())
	logf("%s", res.split())
	logf("broadcast: %s", res.CPU)
	return res, nil
}

// seedInAppDoctors inserts n active doctors whose preferences send every
// category in-app only (the rows the user-created consumer and the
// preferences API would write), in one transaction.
func seedInAppDoctors(ctx context.Context, db *bun.DB, n int) error {
	now := time.Now().UTC()
	prefs := domain.DefaultPreferences()
	for _, c := range domain.Categories {
		prefs.Channels[c] = []domain.Channel{domain.ChannelInApp}
	}
	prefs.FallbackOrder = nil
	if err := prefs.Validate(); err != nil {
		return err
	}
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		const batch = 1000
		for lo := 0; lo < n; lo += batch {
			hi := min(lo+batch, n)
			docs := make([]domain.Doctor, 0, hi-lo)
			rows := make([]store.PreferencesRow, 0, hi-lo)
			for i := lo; i < hi; i++ {
				ext := fmt.Sprintf("harness-bc-%06d", i)
				id := handlers.DoctorID(ext)
				docs = append(docs, domain.Doctor{
					ID: id, ExternalUserID: ext, Name: "Dr. " + ext, Specialty: "General practice", Clinic: "Harness Clinic",
					Email: ext + "@clinic.example", Locale: "en", TimeZone: "Asia/Bangkok", Active: true,
					ProfileVersion: now, CreatedAt: now, UpdatedAt: now,
				})
				rows = append(rows, store.NewPreferencesRow(id, prefs, now))
			}
			if _, err := tx.NewInsert().Model(&docs).Exec(ctx); err != nil {
				return fmt.Errorf("doctors: %w", err)
			}
			if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
				return fmt.Errorf("preferences: %w", err)
			}
		}
		return nil
	})
}

// waitGroupStable waits until the consumer group has members and is
// stable on the broker.
func waitGroupStable(ctx context.Context, brokers []string, group string, timeout time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(timeout)
	state := ""
	for time.Now().Before(deadline) {
		gs, err := adm.DescribeGroups(ctx, group)
		if err == nil {
			if g, ok := gs[group]; ok && g.Err == nil {
				state = fmt.Sprintf("%s with %d members", g.State, len(g.Members))
				if g.State == "Stable" && len(g.Members) > 0 {
					return nil
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("consumer group %s not stable after %s (%s)", group, timeout, state)
}

// postBroadcast creates a broadcast to every active doctor through the API
// and returns its id.
func postBroadcast(ctx context.Context, base, key string) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"title": "Portal maintenance", "body": "The portal is unavailable on Saturday from 22:00 to 23:00.",
		"audience": map[string]any{"kind": "all"},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/broadcasts", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("POST /v1/broadcasts: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("POST /v1/broadcasts: %s: %s", resp.Status, raw)
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &created); err != nil || created.ID == "" {
		return "", fmt.Errorf("POST /v1/broadcasts: answer %s: %v", raw, err)
	}
	return created.ID, nil
}

// waitBroadcast polls until n in-app deliveries are delivered. It fails on
// a delivery that ended any other way, and when neither the notifications
// made nor the deliveries delivered grow for two minutes.
func waitBroadcast(ctx context.Context, db *bun.DB, id string, n int, roles map[string]*role) error {
	type progress struct {
		Made      int `bun:"made"`
		Delivered int `bun:"delivered"`
		Ended     int `bun:"ended"`
	}
	var last progress
	lastChange, lastLog, start := time.Now(), time.Now(), time.Now()
	for {
		var p progress
		// One statement, so that the three counts are of one snapshot; the
		// database holds this broadcast's rows only.
		err := db.NewRaw(`SELECT (SELECT created FROM broadcasts WHERE id = ?) AS made,
  count(*) FILTER (WHERE status = 'delivered') AS delivered,
  count(*) FILTER (WHERE status NOT IN ('queued', 'sending', 'delivered')) AS ended
FROM deliveries`, id).Scan(ctx, &p)
		if err != nil {
			return fmt.Errorf("broadcast progress: %w", err)
		}
		if p.Ended > 0 {
			return fmt.Errorf("broadcast: %d deliveries ended other than delivered: %s", p.Ended, statusCounts(ctx, db))
		}
		if p.Delivered >= n {
			return nil
		}
		if p != last {
			last, lastChange = p, time.Now()
		} else if time.Since(lastChange) > 2*time.Minute {
			var tails []string
			for name, r := range roles {
				tails = append(tails, "rfd "+name+":\n"+r.tail())
			}
			return fmt.Errorf("broadcast stuck at %d made, %d delivered of %d: %s\n%s", p.Made, p.Delivered, n, statusCounts(ctx, db), strings.Join(tails, "\n"))
		}
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			logf("broadcast: %.0fs: %d/%d notifications made, %d delivered", time.Since(start).Seconds(), p.Made, n, p.Delivered)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func statusCounts(ctx context.Context, db *bun.DB) string {
	var rows []struct {
		Status string `bun:"status"`
		N      int    `bun:"n"`
	}
	if err := db.NewRaw(`SELECT status, count(*) AS n FROM deliveries GROUP BY status ORDER BY status`).Scan(ctx, &rows); err != nil {
		return err.Error()
	}
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s %d", r.Status, r.N))
	}
	return strings.Join(out, ", ")
}

// broadcastTimes reads when each phase ended from the rows the service
// wrote, and checks that every doctor got one notification and one
// delivered in-app delivery.
func broadcastTimes(ctx context.Context, db *bun.DB, id string, n int, t0 time.Time, res *BroadcastResult) error {
	var b struct {
		StartedAt bun.NullTime `bun:"started_at"`
		State     string       `bun:"state"`
		Created   int          `bun:"created"`
		Targeted  int          `bun:"targeted"`
	}
	if err := db.NewRaw(`SELECT started_at, state, created, targeted FROM broadcasts WHERE id = ?`, id).Scan(ctx, &b); err != nil {
		return fmt.Errorf("broadcast row: %w", err)
	}
	var nt struct {
		N       int          `bun:"n"`
		Doctors int          `bun:"doctors"`
		Last    bun.NullTime `bun:"last"`
	}
	if err := db.NewRaw(`SELECT count(*) AS n, count(DISTINCT doctor_id) AS doctors, max(created_at) AS last FROM notifications WHERE source_event_id = ?`,
		"broadcast:"+id).Scan(ctx, &nt); err != nil {
		return fmt.Errorf("notifications: %w", err)
	}
	var dl struct {
		N     int          `bun:"n"`
		First bun.NullTime `bun:"first"`
		Last  bun.NullTime `bun:"last"`
	}
	if err := db.NewRaw(`SELECT count(*) AS n, min(d.updated_at) AS first, max(d.updated_at) AS last
FROM deliveries d JOIN notifications n ON n.id = d.notification_id
WHERE n.source_event_id = ? AND d.channel = 'in_app' AND d.status = 'delivered'`, "broadcast:"+id).Scan(ctx, &dl); err != nil {
		return fmt.Errorf("deliveries: %w", err)
	}
	if b.State != "done" || b.Created != n || b.Targeted != n || nt.N != n || nt.Doctors != n || dl.N != n || b.StartedAt.IsZero() {
		return fmt.Errorf("broadcast %s: state %s, targeted %d, created %d; %d notifications to %d doctors; %d in-app deliveries delivered; want %d each",
			id, b.State, b.Targeted, b.Created, nt.N, nt.Doctors, dl.N, n)
	}
	since := func(t time.Time) float64 { return t.Sub(t0).Seconds() }
	res.FanOutStarted, res.FanOutDone = since(b.StartedAt.Time), since(nt.Last.Time)
	res.FirstDelivered, res.Delivered = since(dl.First.Time), since(dl.Last.Time)
	return nil
}

// checkProgress reads the broadcast's progress through the API, as its
// operator would: done, with every notification delivered.
func checkProgress(ctx context.Context, base, key, id string, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/broadcasts/"+id, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET /v1/broadcasts/%s: %w", id, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var p struct {
		State     string `json:"state"`
		Delivered int    `json:"delivered"`
		Failed    int    `json:"failed"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/broadcasts/%s: %s: %s", id, resp.Status, raw)
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("GET /v1/broadcasts/%s: %w", id, err)
	}
	if p.State != "done" || p.Delivered != n || p.Failed != 0 {
		return errors.New("GET /v1/broadcasts/" + id + ": progress " + string(raw))
	}
	return nil
}
