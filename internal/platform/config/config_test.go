package config

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestDefaults(t *testing.T) {
	clearEnv(t)
	cfg, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DatabaseURL != "sqlite://./rfd.db" || cfg.Transport != "sql" || cfg.HTTPAddr != ":8080" || cfg.AdminAddr != ":9090" {
		t.Fatalf("defaults: %+v", cfg)
	}
	if cfg.SQLitePath() != "./rfd.db" || !cfg.IsSQLite() {
		t.Fatalf("sqlite path = %q", cfg.SQLitePath())
	}
	if cfg.ConsumerGroup(ConsumerCheckupEvents) != "rfd.checkup-events" {
		t.Fatalf("group = %q", cfg.ConsumerGroup(ConsumerCheckupEvents))
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	clearEnv(t)
	t.Setenv("RFD_HTTP_ADDR", ":1111")
	t.Setenv("RFD_RETRY_MAX_INTERVAL", "3s")
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	BindFlags(fs)
	if err := fs.Parse([]string{"--http-addr", ":2222", "--throttle", "checkup-events=50,user-created=5"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(fs)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":2222" {
		t.Errorf("flag did not win: %q", cfg.HTTPAddr)
	}
	if cfg.RetryMaxInterval != 3*time.Second {
		t.Errorf("env not read: %s", cfg.RetryMaxInterval)
	}
	if cfg.Throttle["checkup-events"] != 50 || cfg.Throttle["user-created"] != 5 {
		t.Errorf("throttle = %v", cfg.Throttle)
	}
}

func TestInvalidValuesNameTheVariable(t *testing.T) {
	cases := map[string]string{
		"RFD_TRANSPORT":              "rabbit",
		"RFD_RETRY_MAX_ATTEMPTS":     "0",
		"RFD_HANDLER_TIMEOUT":        "forever",
		"RFD_DATABASE_URL":           "oracle://db",
		"RFD_LOG_FORMAT":             "xml",
		"RFD_TOPIC_POISON":           "has space",
		"RFD_HTTP_ADDR":              "8080",
		"RFD_THROTTLE":               "checkup-events=-1",
		"RFD_TIMELINESS_REPORT_TO":   "Ops <ops@hospital.example>, x@y",
		"RFD_CRON_TIMELINESS_REPORT": "every monday",
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv(name, value)
			_, err := Load(nil)
			if err == nil {
				t.Fatalf("%s=%q accepted", name, value)
			}
			if !strings.HasPrefix(err.Error(), name) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line starting with %s", err, name)
			}
		})
	}
	t.Run("kafka on sqlite", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("RFD_TRANSPORT", "kafka")
		if _, err := Load(nil); err == nil || !strings.Contains(err.Error(), "RFD_TRANSPORT") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("kafka instance id", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("RFD_TRANSPORT", "kafka")
		t.Setenv("RFD_DATABASE_URL", "postgres://rfd@db.hospital.example/rfd")
		t.Setenv("RFD_KAFKA_INSTANCE_ID", "rfd-consume-checkup-events-7d9f8-x2k4p")
		cfg, err := Load(nil)
		if err != nil || cfg.KafkaInstanceID != "rfd-consume-checkup-events-7d9f8-x2k4p" {
			t.Fatalf("cfg.KafkaInstanceID = %q, err = %v", cfg.KafkaInstanceID, err)
		}
		t.Setenv("RFD_KAFKA_INSTANCE_ID", "pod/7")
		if _, err := Load(nil); err == nil || !strings.HasPrefix(err.Error(), "RFD_KAFKA_INSTANCE_ID") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("report without smtp", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("RFD_TIMELINESS_REPORT_TO", "ops@hospital.example")
		if _, err := Load(nil); err == nil || !strings.Contains(err.Error(), "RFD_SMTP_HOST") {
			t.Fatalf("err = %v", err)
		}
		t.Setenv("RFD_SMTP_HOST", "smtp.hospital.example")
		t.Setenv("RFD_SMTP_FROM", "rfd@hospital.example")
		if _, err := Load(nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("duplicate topics", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("RFD_TOPIC_POISON", "checkup-events")
		if _, err := Load(nil); err == nil || !strings.Contains(err.Error(), "RFD_TOPIC_POISON") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestConfigurationDocumentsEveryOption keeps docs/configuration.md's table
// in step with Config: every option's row, with its flag, default, the
// roles that read it and description as the flag's help says them, and no
// row for an option that is gone.
func TestConfigurationDocumentsEveryOption(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range Fields() {
		known[f.Env] = true
		def := f.Default
		if def == "" {
			def = "(unset)"
		}
		roles := strings.ReplaceAll(f.RolesTag, ",", ", ")
		row := "| `" + f.Env + "` | `--" + f.Flag + "` | `" + def + "` | " + roles + " | " + f.Desc + " |"
		if !strings.Contains(string(doc), row+"\n") {
			t.Errorf("docs/configuration.md has no row\n%s", row)
		}
	}
	for _, line := range strings.Split(string(doc), "\n") {
		if env, ok := strings.CutPrefix(line, "| `RFD_"); ok {
			name := "RFD_" + env[:strings.Index(env, "`")]
			if !known[name] {
				t.Errorf("docs/configuration.md documents %s, which is no option", name)
			}
		}
	}
}

func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "RFD_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// TestPublicBaseURL: the API's public URL (the spec's server, the base of
// SMS status callbacks) is RFD_PUBLIC_URL when set, and otherwise follows
// the listen address, so a server on another port names that port.
func TestPublicBaseURL(t *testing.T) {
	for _, c := range []struct{ publicURL, httpAddr, want string }{
		{"", ":8080", "http://localhost:8080"},
		{"", "0.0.0.0:9000", "http://localhost:9000"},
		{"", "[::]:9000", "http://localhost:9000"},
		{"", "127.0.0.1:9000", "http://127.0.0.1:9000"},
		{"", "[::1]:9000", "http://[::1]:9000"},
		{"", "rfd.internal:80", "http://rfd.internal:80"},
		{"https://rfd.example.org/notify/", ":8080", "https://rfd.example.org/notify"},
		{"http://10.0.0.5:8080", ":9000", "http://10.0.0.5:8080"},
	} {
		cfg := Config{PublicURL: c.publicURL, HTTPAddr: c.httpAddr}
		if got := cfg.PublicBaseURL(); got != c.want {
			t.Errorf("PublicURL %q, HTTPAddr %q: PublicBaseURL = %q, want %q", c.publicURL, c.httpAddr, got, c.want)
		}
	}

	clearEnv(t)
	t.Setenv("RFD_HTTP_ADDR", ":9123")
	cfg, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.PublicBaseURL(); got != "http://localhost:9123" {
		t.Errorf("unset RFD_PUBLIC_URL with RFD_HTTP_ADDR :9123: PublicBaseURL = %q", got)
	}
	for _, bad := range []string{"localhost:8080", "ftp://rfd.example.org", "/notify"} {
		t.Setenv("RFD_PUBLIC_URL", bad)
		if _, err := Load(nil); err == nil || !strings.Contains(err.Error(), "RFD_PUBLIC_URL") {
			t.Errorf("RFD_PUBLIC_URL=%q: err = %v", bad, err)
		}
	}
}

// TestEveryOptionDeclaresItsRoles: every option names the roles that read
// it, with known names only, and each role's list holds what every role
// needs to start (the database and the transport) and nothing of a
// provider it does not talk to.
func TestEveryOptionDeclaresItsRoles(t *testing.T) {
	known := map[string]bool{rolesAll: true, rolesRouted: true, RoleServe: true}
	for _, r := range Roles {
		known[r] = true
	}
	for _, f := range Fields() {
		if f.RolesTag == "" {
			t.Errorf("%s declares no roles (the roles tag)", f.Env)
		}
		for _, r := range strings.Split(f.RolesTag, ",") {
			if !known[r] {
				t.Errorf("%s: roles tag %q names %q, which is no role", f.Env, f.RolesTag, r)
			}
		}
		if !f.ReadBy(RoleServe) {
			t.Errorf("%s: serve reads every option", f.Env)
		}
	}
	for _, role := range Roles {
		env := RoleEnv(role)
		for _, must := range []string{"RFD_DATABASE_URL", "RFD_TRANSPORT", "RFD_KAFKA_BROKERS", "RFD_LOG_LEVEL", "RFD_ADMIN_ADDR"} {
			if !slices.Contains(env, must) {
				t.Errorf("role %s does not read %s", role, must)
			}
		}
	}
	// The provider credentials: only the send-notification consumer talks
	// to the providers; the worker e-mails reports over SMTP, and the api
	// checks the SMS provider's callback signatures with its auth token.
	readers := map[string][]string{
		"RFD_SMTP_PASSWORD":        {RoleWorker, ConsumerSendNotification},
		"RFD_SMTP_USERNAME":        {RoleWorker, ConsumerSendNotification},
		"RFD_TWILIO_ACCOUNT_SID":   {ConsumerSendNotification},
		"RFD_TWILIO_AUTH_TOKEN":    {RoleAPI, ConsumerSendNotification},
		"RFD_FCM_CREDENTIALS_FILE": {ConsumerSendNotification},
		"RFD_FCM_PROJECT_ID":       {ConsumerSendNotification},
		"RFD_JWT_HS256_SECRET":     {RoleAPI},
		"RFD_AUTO_MIGRATE":         {},
	}
	for _, f := range Fields() {
		if want, ok := readers[f.Env]; ok && !slices.Equal(f.Roles, want) {
			t.Errorf("%s is read by %v, want %v", f.Env, f.Roles, want)
		}
	}
}
