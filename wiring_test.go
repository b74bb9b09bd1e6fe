package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/roles"
)

// TestInjectorsBuildOnlyTheirRole: each role's injector builds only what
// the role runs. With push configured but its key file missing, building
// the provider clients fails; so only the roles that talk to the providers
// (the send-notification consumer, and serve, which runs every role) may
// fail, and every other role, the api first, builds and closes cleanly.
func TestInjectorsBuildOnlyTheirRole(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "RFD_") {
			t.Setenv(k, "")
			_ = os.Unsetenv(k)
		}
	}
	cfg, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.DatabaseURL = "sqlite://" + filepath.Join(dir, "rfd.db")
	cfg.LogLevel = "error"
	cfg.FCMProjectID = "rfd-test"
	cfg.FCMCredentialsFile = filepath.Join(dir, "no-such-key.json")
	ctx := context.Background()

	m, cleanup, err := initMigrate(ctx, cfg, roles.CreateDatabase(true))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Up(ctx, io.Discard); err != nil {
		t.Fatal(err)
	}
	cleanup()

	build := map[string]func() (func(), error){
		"api":    func() (func(), error) { _, c, err := initAPI(ctx, cfg); return c, err },
		"worker": func() (func(), error) { _, c, err := initWorker(ctx, cfg); return c, err },
		"cron":   func() (func(), error) { _, c, err := initCron(ctx, cfg); return c, err },
		"serve":  func() (func(), error) { _, c, err := initServe(ctx, cfg); return c, err },
	}
	for _, name := range config.Consumers {
		build[name] = func() (func(), error) {
			_, c, err := initConsume(ctx, cfg, roles.ConsumerName(name))
			return c, err
		}
	}
	talksToProviders := map[string]bool{config.ConsumerSendNotification: true, "serve": true}
	for role, fn := range build {
		t.Run(role, func(t *testing.T) {
			cleanup, err := fn()
			if talksToProviders[role] {
				if err == nil || !strings.Contains(err.Error(), "RFD_FCM_CREDENTIALS_FILE") {
					t.Fatalf("%s built without its push key file: err = %v", role, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s read a provider's settings it does not use: %v", role, err)
			}
			cleanup()
		})
	}
}
