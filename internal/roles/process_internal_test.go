package roles

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/api"
)

// TestProcessServesHeaderErrorsAsProblemJSON: the servers a role runs cap
// request headers at api.MaxHeaderBytes and answer a request over it with
// 431 problem+json (net/http writes that answer itself, before any handler:
// the process serves through api.ProblemListener).
func TestProcessServesHeaderErrorsAsProblemJSON(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	p := &process{
		logger:          slog.New(slog.DiscardHandler),
		shutdownTimeout: 5 * time.Second,
		servers: []*http.Server{newServer(addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}))},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("process: %v", err)
		}
	})

	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("a", api.MaxHeaderBytes+8<<10))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var problem struct {
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&problem); err != nil {
		t.Fatalf("431 body: %v", err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") ||
		problem.Status != http.StatusRequestHeaderFieldsTooLarge || problem.Title == "" || problem.Detail == "" {
		t.Fatalf("%d %s %+v: want 431 problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), problem)
	}
}
