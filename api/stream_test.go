package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/delivery"
	"github.com/rfd-notify/rfd/internal/delivery/inapp"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
	"github.com/rfd-notify/rfd/router"
)

type testDoctorKey struct{}

// streamReplica is one API replica: its hub reads the in-app broadcast in
// a consumer group of its own, and its HTTP server serves the stream.
type streamReplica struct {
	hub *inapp.Hub
	srv *httptest.Server
}

func newStreamReplica(t *testing.T, env *testenv.Env, rt *router.Router, name string) *streamReplica {
	t.Helper()
	hub := inapp.NewHub()
	if err := rt.AddConsumer(router.Handler{Name: "inapp-" + name, Topic: env.Config.TopicInApp,
		ConsumerGroup: env.Config.ConsumerGroup("inapp." + name), Handle: hub.Handle}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	hapi := humago.New(mux, huma.DefaultConfig("test", "1"))
	// Authentication is the auth package's business and tested there; here
	// a header names the doctor so the test exercises the stream itself.
	hapi.UseMiddleware(func(ctx huma.Context, next func(huma.Context)) {
		var d domain.Doctor
		if err := env.DB.NewSelect().Model(&d).Where("id = ?", ctx.Header("X-Test-Doctor")).Scan(ctx.Context()); err != nil {
			huma.WriteErr(hapi, ctx, http.StatusUnauthorized, "unknown doctor")
			return
		}
		next(huma.WithValue(ctx, testDoctorKey{}, d))
	})
	api.RegisterStream(hapi, api.StreamDeps{
		DB:        env.DB,
		Hub:       hub,
		Heartbeat: 200 * time.Millisecond,
		Doctor: func(ctx context.Context) (domain.Doctor, bool) {
			d, ok := ctx.Value(testDoctorKey{}).(domain.Doctor)
			return d, ok
		},
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &streamReplica{hub: hub, srv: srv}
}

type sseEvent struct {
	ID   string
	Name string
	Data api.StreamNotification
}

// openStream connects and returns the events as they arrive.
func openStream(t *testing.T, url, doctorID, lastEventID string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/notifications/stream", nil)
	req.Header.Set("X-Test-Doctor", doctorID)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		cancel()
		t.Fatalf("stream: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	out := make(chan sseEvent, 100)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.Name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.Data)
			case line == "" && ev.Name != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return out, func() { cancel(); wg.Wait() }
}

func collect(t *testing.T, ch <-chan sseEvent, n int) []sseEvent {
	t.Helper()
	var got []sseEvent
	deadline := time.After(60 * time.Second)
	for len(got) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream closed after %d of %d events", len(got), n)
			}
			got = append(got, ev)
		case <-deadline:
			t.Fatalf("got %d of %d events: %+v", len(got), n, got)
		}
	}
	// Nothing extra may follow.
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("unexpected extra event %+v", ev)
		}
	case <-time.After(500 * time.Millisecond):
	}
	return got
}

// TestStreamAcrossReplicas: a notification delivered by the send-notification
// consumer reaches the doctor's stream on whichever replica it is connected
// to; reconnecting with Last-Event-ID replays exactly what was missed.
func TestStreamAcrossReplicas(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresKafka} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, name)
			cfg := env.Config
			env.EnsureTopics(t, cfg.TopicSendNotification, cfg.TopicInApp, cfg.TopicPoison)
			ctx := context.Background()
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))

			disp, err := delivery.NewDispatcher(env.DB, env.Inbox, env.Outbox, delivery.Senders{}, delivery.Options{
				MaxAttempts: 3, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
				SendTopic: cfg.TopicSendNotification, InAppTopic: cfg.TopicInApp, ConsumerName: config.ConsumerSendNotification,
			}, time.Now, prometheus.NewRegistry(), logger)
			if err != nil {
				t.Fatal(err)
			}
			notifier := notify.New(env.Outbox, cfg.TopicSendNotification, cfg.PortalURL, time.Now)
			set := handlers.Consumers(handlers.Deps{Config: cfg, Inbox: env.Inbox, Outbox: env.Outbox, Notifier: notifier, Dispatcher: disp})
			rt := env.NewRouter(t)
			if err := rt.AddConsumer(set[config.ConsumerSendNotification]); err != nil {
				t.Fatal(err)
			}
			a := newStreamReplica(t, env, rt, "replica-a")
			b := newStreamReplica(t, env, rt, "replica-b")
			testenv.Run(t, rt)

			now := time.Now().UTC()
			doc := domain.Doctor{ID: "doc-stream", ExternalUserID: "ext-stream", Name: "Dr. Stream", Locale: "en", TimeZone: "UTC",
				Active: true, ProfileVersion: now, CreatedAt: now, UpdatedAt: now}
			if _, err := env.DB.NewInsert().Model(&doc).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			prefs := domain.DefaultPreferences()
			prefs.Channels[domain.CategoryResults] = []domain.Channel{domain.ChannelInApp}
			row := store.NewPreferencesRow(doc.ID, prefs, now)
			if _, err := env.DB.NewInsert().Model(&row).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			notifyN := func(from, to int) {
				for i := from; i <= to; i++ {
					err := env.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
						_, err := notifier.Notify(ctx, tx, notify.Intent{
							Key: fmt.Sprintf("stream/%d", i), SourceEventID: fmt.Sprintf("ev-%d", i),
							Type: templates.TypeResultAvailable, Category: domain.CategoryResults, Priority: domain.PriorityNormal,
						}, []string{doc.ExternalUserID})
						return err
					})
					if err != nil {
						t.Fatal(err)
					}
				}
			}

			events, closeB := openStream(t, b.srv.URL, doc.ID, "")
			notifyN(1, 3)
			got := collect(t, events, 3)
			for i, ev := range got {
				if ev.ID != fmt.Sprint(i+1) || ev.Name != "notification" || ev.Data.Seq != int64(i+1) {
					t.Fatalf("live event %d = %+v, want id %d", i, ev, i+1)
				}
			}
			closeB()

			notifyN(4, 5) // missed while disconnected
			events, closeA := openStream(t, a.srv.URL, doc.ID, "3")
			defer closeA()
			replayed := collect(t, events, 2)
			if replayed[0].ID != "4" || replayed[1].ID != "5" {
				t.Fatalf("replay after Last-Event-ID 3 = %+v, want 4 and 5", replayed)
			}
			notifyN(6, 6)
			live := collect(t, events, 1)
			if live[0].ID != "6" {
				t.Fatalf("live after replay = %+v, want 6", live)
			}
			if got := countDelivered(t, env); got != 6 {
				t.Fatalf("in-app deliveries delivered = %d, want 6", got)
			}
		})
	}
}

func countDelivered(t *testing.T, env *testenv.Env) int {
	t.Helper()
	var n int
	if err := env.DB.QueryRowContext(context.Background(), `SELECT count(*) FROM deliveries WHERE channel = 'in_app' AND status = 'delivered'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
