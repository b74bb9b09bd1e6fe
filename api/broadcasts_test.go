package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/jobs/broadcast"
)

// POST /v1/broadcasts stores the broadcast (202 with Location); the worker's
// fan-out makes the notifications; GET shows the progress to the key that
// created it only.
func TestBroadcasts(t *testing.T) {
	each(t, func(t *testing.T, f *fixture) {
		f.registerDoctor("b-1")
		f.registerDoctor("b-2")
		key := f.apiKey("comms", auth.ScopeBroadcastsWrite)
		other := f.apiKey("other", auth.ScopeBroadcastsWrite)
		f.do(http.MethodPost, "/v1/broadcasts", f.apiKey("reader", auth.ScopeDoctorsRead), map[string]any{}).problem(t, http.StatusForbidden)
		f.do(http.MethodPost, "/v1/broadcasts", key, map[string]any{"title": "t", "body": "b", "audience": map[string]any{"kind": "clinic"}}).
			problem(t, http.StatusUnprocessableEntity)
		f.do(http.MethodPost, "/v1/broadcasts", key, map[string]any{"title": "t", "body": "b", "audience": map[string]any{"kind": "everyone"}}).
			problem(t, http.StatusUnprocessableEntity)

		r := f.do(http.MethodPost, "/v1/broadcasts", key, map[string]any{"title": "Portal maintenance", "body": "Saturday 22:00-23:00",
			"audience": map[string]any{"kind": "clinic", "value": "Sukhumvit Heart Clinic"}})
		var created api.BroadcastProgress
		r.json(t, &created)
		if r.status != http.StatusAccepted || created.State != broadcast.StatePending || r.header.Get("Location") != "/v1/broadcasts/"+created.ID {
			t.Fatalf("create: %d %s %v", r.status, r.body, r.header)
		}
		f.do(http.MethodGet, "/v1/broadcasts/"+created.ID, other, nil).problem(t, http.StatusNotFound)

		fan := broadcast.NewFanOut(f.env.DB, f.notifier, broadcast.Options{ChunkSize: 1}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		for {
			more, err := fan.Chunk(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !more {
				break
			}
		}
		var p api.BroadcastProgress
		r = f.do(http.MethodGet, "/v1/broadcasts/"+created.ID, key, nil)
		r.json(t, &p)
		if r.status != http.StatusOK || p.State != broadcast.StateDone || p.Targeted != 2 || p.Created != 2 || p.CompletedAt == nil {
			t.Fatalf("progress: %d %s", r.status, r.body)
		}
	})
}
