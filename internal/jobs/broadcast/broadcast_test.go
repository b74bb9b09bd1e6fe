package broadcast_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/jobs/broadcast"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

var (
	t0      = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	discard = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// audienceSize is 300 by default; RFD_BROADCAST_DOCTORS=50000 runs the
// full-size form.
func audienceSize(t *testing.T) int {
	if v := os.Getenv("RFD_BROADCAST_DOCTORS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("RFD_BROADCAST_DOCTORS=%q", v)
		}
		return n
	}
	return 300
}

func insertDoctors(t *testing.T, env *testenv.Env, n int, clinic func(i int) string) {
	t.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += 1000 {
		var batch []domain.Doctor
		for i := start; i < min(n, start+1000); i++ {
			batch = append(batch, domain.Doctor{ID: fmt.Sprintf("doc-%06d", i), ExternalUserID: fmt.Sprintf("ext-%06d", i), Name: "Dr",
				Clinic: clinic(i), Locale: "en", TimeZone: "UTC", Active: true, ProfileVersion: t0, CreatedAt: t0, UpdatedAt: t0})
		}
		if _, err := env.DB.NewInsert().Model(&batch).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func count(t *testing.T, env *testenv.Env, q string, args ...any) int {
	t.Helper()
	var n int
	if err := env.DB.NewRaw(q, args...).Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A broadcast to every active doctor, its worker killed half-way and a new
// one started: every doctor gets exactly one notification (and one
// send-notification command), and the progress adds up.
func TestFanOutResumesAfterKill(t *testing.T) {
	for _, name := range []string{testenv.SQLiteSQL, testenv.PostgresSQL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := testenv.New(t, name)
			env.EnsureTopics(t, env.Config.TopicSendNotification)
			n := audienceSize(t)
			// n active doctors and one inactive, who is not in the audience.
			insertDoctors(t, env, n+1, func(int) string { return "" })
			if _, err := env.DB.NewRaw(`UPDATE doctors SET active = FALSE WHERE id = 'doc-000000'`).Exec(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := n
			ctx := context.Background()
			b, err := broadcast.Create(ctx, store.NewQueries(env.DB), broadcast.Request{Title: "Portal maintenance", Body: "Saturday 22:00-23:00",
				Audience: broadcast.Audience{Kind: broadcast.AudienceAll}}, t0)
			if err != nil {
				t.Fatal(err)
			}
			notifier := notify.New(env.Outbox, env.Config.TopicSendNotification, env.Config.PortalURL, func() time.Time { return t0 })
			chunk := max(10, n/20)

			// The first worker is killed once a third is done.
			runCtx, kill := context.WithCancel(ctx)
			done := make(chan error, 1)
			first := broadcast.NewFanOut(env.DB, notifier, broadcast.Options{ChunkSize: chunk, Pause: 5 * time.Millisecond}, nil, discard)
			go func() { done <- first.Run(runCtx, 10*time.Millisecond) }()
			testenv.Eventually(t, 5*time.Minute, "a third notified", func() (bool, string) {
				p, err := broadcast.Get(ctx, store.NewQueries(env.DB), b.ID)
				return err == nil && p.Created >= want/3, fmt.Sprint(p.Created, err)
			})
			kill()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			p, err := broadcast.Get(ctx, store.NewQueries(env.DB), b.ID)
			if err != nil || p.State != broadcast.StateRunning || p.Created >= want || p.Targeted != want {
				t.Fatalf("after the kill: %+v %v", p.Broadcast, err)
			}

			// The restarted worker; until the killed worker's connection has
			// rolled back, its row lock makes the broadcast skip (no work).
			second := broadcast.NewFanOut(env.DB, notifier, broadcast.Options{ChunkSize: chunk}, nil, discard)
			testenv.Eventually(t, 5*time.Minute, "broadcast done", func() (bool, string) {
				if _, err := second.Chunk(ctx); err != nil {
					t.Fatal(err)
				}
				p, err := broadcast.Get(ctx, store.NewQueries(env.DB), b.ID)
				return err == nil && p.State == broadcast.StateDone, fmt.Sprint(p.Created, err)
			})
			p, err = broadcast.Get(ctx, store.NewQueries(env.DB), b.ID)
			if err != nil || p.State != broadcast.StateDone || p.Created != want || p.Targeted != want {
				t.Fatalf("done: %+v %v", p.Broadcast, err)
			}
			if got := count(t, env, "SELECT COUNT(*) FROM notifications WHERE source_event_id = ?", "broadcast:"+b.ID); got != want {
				t.Fatalf("notifications = %d, want %d", got, want)
			}
			if got := count(t, env, "SELECT COUNT(DISTINCT doctor_id) FROM notifications WHERE source_event_id = ?", "broadcast:"+b.ID); got != want {
				t.Fatalf("doctors notified = %d, want %d", got, want)
			}
			if got := count(t, env, `SELECT COUNT(*) FROM "watermill_send-notification"`); got != want {
				t.Fatalf("send-notification commands = %d, want %d", got, want)
			}

			// Progress: two delivered, one failed, the rest still queued.
			if _, err := env.DB.NewRaw(`UPDATE deliveries SET status = 'delivered' WHERE notification_id IN (SELECT id FROM notifications WHERE doctor_id IN ('doc-000001', 'doc-000002'))`).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := env.DB.NewRaw(`UPDATE deliveries SET status = 'failed' WHERE notification_id IN (SELECT id FROM notifications WHERE doctor_id = 'doc-000003')`).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			p, err = broadcast.Get(ctx, store.NewQueries(env.DB), b.ID)
			if err != nil || p.Delivered != 2 || p.Failed != 1 {
				t.Fatalf("progress: delivered %d failed %d, %v", p.Delivered, p.Failed, err)
			}
		})
	}
}

// Audiences by clinic and by an explicit list; bad requests are refused.
func TestAudiences(t *testing.T) {
	env := testenv.New(t, testenv.SQLiteSQL)
	env.EnsureTopics(t, env.Config.TopicSendNotification)
	insertDoctors(t, env, 30, func(i int) string { return []string{"north", "south", "east"}[i%3] })
	ctx := context.Background()
	notifier := notify.New(env.Outbox, env.Config.TopicSendNotification, env.Config.PortalURL, func() time.Time { return t0 })
	fan := broadcast.NewFanOut(env.DB, notifier, broadcast.Options{ChunkSize: 4}, nil, discard)
	clinic, err := broadcast.Create(ctx, store.NewQueries(env.DB), broadcast.Request{Title: "t", Body: "b", Audience: broadcast.Audience{Kind: broadcast.AudienceClinic, Value: "north"}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	list, err := broadcast.Create(ctx, store.NewQueries(env.DB), broadcast.Request{Title: "t", Body: "b", Category: domain.CategoryOrders,
		Audience: broadcast.Audience{Kind: broadcast.AudienceDoctors, Doctors: []string{"doc-000001", "ext-000002", "nobody"}}}, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for {
		more, err := fan.Chunk(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	for id, want := range map[string]int{clinic.ID: 10, list.ID: 2} {
		p, err := broadcast.Get(ctx, store.NewQueries(env.DB), id)
		if err != nil || p.Created != want || p.Targeted != want || p.State != broadcast.StateDone {
			t.Fatalf("broadcast %s: %+v %v", id, p.Broadcast, err)
		}
	}
	for _, bad := range []broadcast.Request{
		{Audience: broadcast.Audience{Kind: "everyone"}},
		{Audience: broadcast.Audience{Kind: broadcast.AudienceClinic}},
		{Audience: broadcast.Audience{Kind: broadcast.AudienceDoctors}},
		{Audience: broadcast.Audience{Kind: broadcast.AudienceAll}, Category: domain.CategoryCriticalResults},
	} {
		if _, err := broadcast.Create(ctx, store.NewQueries(env.DB), bad, t0); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}
