package deploy_test

import (
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/testkit/pgtest"
	"github.com/rfd-notify/rfd/internal/testkit/rfdbin"
)

// secretVars are the options whose values are secrets: the Secret
// rfd-secrets holds them, and a pod gets one only by name (secretKeyRef).
var secretVars = []string{
	"RFD_DATABASE_URL",
	"RFD_SMTP_USERNAME", "RFD_SMTP_PASSWORD",
	"RFD_TWILIO_ACCOUNT_SID", "RFD_TWILIO_AUTH_TOKEN",
	"RFD_JWT_HS256_SECRET",
}

// field is the option named env.
func field(t *testing.T, env string) config.Field {
	t.Helper()
	for _, f := range config.Fields() {
		if f.Env == env {
			return f
		}
	}
	t.Fatalf("%s is no option", env)
	return config.Field{}
}

// reads says whether the process run with args reads the option: a role
// reads what config declares for it; a command (migrate) what every role
// and command reads ("all").
func reads(t *testing.T, args []string, env string) bool {
	t.Helper()
	f := field(t, env)
	switch {
	case len(args) == 2 && args[0] == "consume":
		return f.ReadBy(args[1])
	case slices.Contains(config.Roles, args[0]):
		return f.ReadBy(args[0])
	default:
		return f.RolesTag == "all"
	}
}

// TestRoleSecrets proves the per-role wiring from both ends.
//
// manifests: no rendered Deployment or Job takes the whole Secret
// (envFrom secretRef), and each gets, by name, exactly the secrets its role
// reads: the api none of a provider's but the SMS callbacks' auth token,
// the send-notification consumer the providers', the worker the SMTP
// login, every other consumer and the cron only the database's URL.
//
// start: each role, started from the built binary with only the variables
// config declares for it (on a migrated PostgreSQL database, the SQL
// transport), gets ready and exits 0 on SIGTERM; the api also with broken
// settings of a provider it does not talk to set beside them.
func TestRoleSecrets(t *testing.T) {
	t.Run("manifests", func(t *testing.T) {
		for _, overlay := range []string{"overlays/dev", "overlays/prod"} {
			r := decode(t, overlay)
			pods := map[string]corev1.PodSpec{}
			for name, d := range r.deployments {
				pods[name] = d.Spec.Template.Spec
			}
			for name, j := range r.jobs {
				pods[name] = j.Spec.Template.Spec
			}
			for name, spec := range pods {
				for _, c := range spec.Containers {
					checkSecrets(t, overlay+" "+name, c)
				}
			}
		}
	})
	t.Run("start", func(t *testing.T) {
		bin := rfdbin.Build(t)
		dbURL := pgtest.NewDatabase(t)
		dir := t.TempDir()
		base := map[string]string{
			"RFD_DATABASE_URL":     dbURL,
			"RFD_TRANSPORT":        config.TransportSQL,
			"RFD_SHUTDOWN_TIMEOUT": "10s",
			"RFD_LOG_LEVEL":        "warn",
		}
		migrate := exec.Command(bin, "migrate", "up")
		migrate.Dir, migrate.Env = dir, processEnv(base)
		if out, err := migrate.CombinedOutput(); err != nil {
			t.Fatalf("rfd migrate up: %v\n%s", err, out)
		}
		for _, role := range config.Roles {
			args := []string{role}
			if slices.Contains(config.Consumers, role) {
				args = []string{"consume", role}
			}
			t.Run(role, func(t *testing.T) {
				env := map[string]string{"RFD_ADMIN_ADDR": rfdbin.FreeAddr(t)}
				if reads(t, args, "RFD_HTTP_ADDR") {
					env["RFD_HTTP_ADDR"] = rfdbin.FreeAddr(t)
				}
				for k, v := range base {
					env[k] = v
				}
				for k := range env {
					if !reads(t, args, k) {
						t.Fatalf("the test sets %s, which %s does not read", k, role)
					}
				}
				startReadyStop(t, bin, dir, env, args)
			})
		}
		// The api reads no provider's settings: an FCM project whose key
		// file does not exist and an SMTP server that is no address stop
		// the send-notification consumer, never the api.
		t.Run("api ignores the providers", func(t *testing.T) {
			env := map[string]string{"RFD_ADMIN_ADDR": rfdbin.FreeAddr(t), "RFD_HTTP_ADDR": rfdbin.FreeAddr(t),
				"RFD_FCM_PROJECT_ID": "rfd-test", "RFD_FCM_CREDENTIALS_FILE": dir + "/no-such-key.json"}
			for k, v := range base {
				env[k] = v
			}
			for _, k := range []string{"RFD_FCM_PROJECT_ID", "RFD_FCM_CREDENTIALS_FILE"} {
				if reads(t, []string{"api"}, k) {
					t.Fatalf("config declares that the api reads %s", k)
				}
			}
			startReadyStop(t, bin, dir, env, []string{"api"})
		})
	})
}

// checkSecrets holds one container to its role's secrets.
func checkSecrets(t *testing.T, what string, c corev1.Container) {
	t.Helper()
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil {
			t.Errorf("%s: takes the whole Secret %s (envFrom), not the keys its role reads", what, ef.SecretRef.Name)
		}
	}
	var got []string
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		if key := e.ValueFrom.SecretKeyRef.Key; key != e.Name {
			t.Errorf("%s: %s comes from the Secret's key %s", what, e.Name, key)
		}
		if !slices.Contains(secretVars, e.Name) {
			t.Errorf("%s: %s comes from the Secret but is not one of the secrets %v", what, e.Name, secretVars)
		}
		if !reads(t, c.Args, e.Name) {
			t.Errorf("%s (rfd %s): mounts the secret %s, which its role does not read", what, strings.Join(c.Args, " "), e.Name)
		}
		got = append(got, e.Name)
	}
	var want []string
	for _, env := range secretVars {
		if reads(t, c.Args, env) {
			want = append(want, env)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s (rfd %s): secrets %v, want those its role reads: %v", what, strings.Join(c.Args, " "), got, want)
	}
}

// processEnv is the environment of a process with only the RFD_ variables
// of vars (PATH and HOME kept, nothing else of the caller's RFD_ settings).
func processEnv(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RFD_") {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// startReadyStop starts rfd with args and env, waits for its admin
// listener's /readyz to answer 200, sends SIGTERM and wants exit 0.
func startReadyStop(t *testing.T, bin, dir string, env map[string]string, args []string) {
	t.Helper()
	cmd, exited, out := rfdbin.Start(t, bin, dir, processEnv(env), args...)
	readyz := "http://" + env["RFD_ADMIN_ADDR"] + "/readyz"
	for deadline := time.Now().Add(60 * time.Second); ; {
		if resp, err := http.Get(readyz); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("rfd %s exited before it was ready: %v\n%s", strings.Join(args, " "), err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("rfd %s: %s not 200 within 60s\n%s", strings.Join(args, " "), readyz, out.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("rfd %s exited with %v after SIGTERM\n%s", strings.Join(args, " "), err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("rfd %s did not exit within 20s of SIGTERM\n%s", strings.Join(args, " "), out.String())
	}
}
