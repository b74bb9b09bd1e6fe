package roles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/router"
)

// process runs a role's HTTP servers and router until ctx is cancelled (by
// SIGTERM or SIGINT), then shuts down in order: stop taking messages and
// requests, let in-flight work finish, and return within the shutdown
// timeout.
type process struct {
	logger          *slog.Logger
	shutdownTimeout time.Duration
	servers         []*http.Server
	router          *router.Router // nil when the role consumes nothing
	// background loops run until the shutdown starts.
	background []func(ctx context.Context) error
}

func (p *process) run(ctx context.Context) error {
	errc := make(chan error, len(p.servers)+len(p.background)+1)

	for _, srv := range p.servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", srv.Addr, err)
		}
		p.logger.Info("listening", "addr", ln.Addr().String())
		go func() {
			// net/http's own error answers (431, 400) become problem+json.
			if err := srv.Serve(api.ProblemListener(ln)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http server %s: %w", srv.Addr, err)
			}
		}()
	}

	routerDone := make(chan struct{})
	if p.router != nil {
		go func() {
			defer close(routerDone)
			// The router gets its own context: on shutdown it is closed
			// explicitly, so in-flight messages finish instead of being
			// cut off by a cancelled context.
			if err := p.router.Run(context.Background()); err != nil {
				errc <- err
			}
		}()
	} else {
		close(routerDone)
	}

	bgCtx, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	bgDone := make(chan struct{}, len(p.background))
	for _, fn := range p.background {
		go func() {
			defer func() { bgDone <- struct{}{} }()
			if err := fn(bgCtx); err != nil {
				errc <- err
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
		p.logger.Info("shutting down", "timeout", p.shutdownTimeout.String())
	case runErr = <-errc:
		p.logger.Error("stopping after failure", "error", runErr)
	}

	deadline := time.Now().Add(p.shutdownTimeout)
	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	// Stop taking new work first, on every front at once.
	stopBackground()
	if p.router != nil {
		if err := p.router.Close(); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("close router: %w", err))
		}
	}
	for _, srv := range p.servers {
		if err := srv.Shutdown(sctx); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("shutdown http server %s: %w", srv.Addr, err))
		}
	}
	select {
	case <-routerDone:
	case <-sctx.Done():
		runErr = errors.Join(runErr, errors.New("router did not stop within the shutdown timeout"))
	}
	for range p.background {
		select {
		case <-bgDone:
		case <-sctx.Done():
		}
	}
	if runErr == nil {
		p.logger.Info("stopped")
	}
	return runErr
}

func newServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    api.MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
	}
}
