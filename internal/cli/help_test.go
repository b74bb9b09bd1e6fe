package cli

import (
	"bytes"
	"strings"
	"testing"
)

func help(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := Execute(Injectors{}, append(args, "--help"), &out, &errOut); code != ExitOK {
		t.Fatalf("%v --help: exit %d: %s", args, code, errOut.String())
	}
	return out.String()
}

// A subcommand's help lists its own flags first and the shared
// configuration flags after them, under their own heading.
func TestHelpShowsOwnFlagsBeforeConfiguration(t *testing.T) {
	out := help(t, "apikey", "create")
	own := strings.Index(out, "--scopes")
	heading := strings.Index(out, "Configuration flags")
	shared := strings.Index(out, "--database-url")
	if own < 0 || heading < 0 || shared < 0 {
		t.Fatalf("help lacks its own flags, the heading or the configuration:\n%s", out)
	}
	if !(own < heading && heading < shared) {
		t.Fatalf("own flag at %d, heading at %d, configuration at %d: want own < heading < configuration", own, heading, shared)
	}
	if strings.Contains(out, "Global Flags") {
		t.Fatal("help still says Global Flags")
	}
}

func TestWorkerHelpSaysEverythingItRuns(t *testing.T) {
	out := help(t, "worker")
	for _, part := range []string{"outbox forwarder", "poison drain", "report mailer", "pending-notification sweep", "broadcast fan-out", "lag"} {
		if !strings.Contains(out, part) {
			t.Errorf("worker --help does not mention %q", part)
		}
	}
}

func TestMigrateHelpSaysWhatDownUndoes(t *testing.T) {
	out := help(t, "migrate")
	if !strings.Contains(out, "down rolls back the last group") {
		t.Fatalf("migrate --help does not say what down undoes:\n%s", out)
	}
}

func TestTokenRefusesWithoutADevSecret(t *testing.T) {
	t.Setenv("RFD_JWT_HS256_SECRET", "")
	var out, errOut bytes.Buffer
	code := Execute(Injectors{}, []string{"token", "--doctor", "usr-1"}, &out, &errOut)
	if code == ExitOK || !strings.Contains(errOut.String(), "RFD_JWT_HS256_SECRET") || out.Len() != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q: want a refusal naming RFD_JWT_HS256_SECRET and no token", code, out.String(), errOut.String())
	}
}

func TestTokenMintsWithADevSecret(t *testing.T) {
	t.Setenv("RFD_JWT_HS256_SECRET", strings.Repeat("k", 32))
	t.Setenv("RFD_JWT_ISSUER", "rfd-dev")
	var out, errOut bytes.Buffer
	if code := Execute(Injectors{}, []string{"token", "--doctor", "usr-1", "--ttl", "5m"}, &out, &errOut); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if parts := strings.Split(strings.TrimSpace(out.String()), "."); len(parts) != 3 {
		t.Fatalf("not a JWT: %q", out.String())
	}
}

// rfd publish writes what it is given: its help says the payload is not
// validated, and where validation is (the API).
func TestPublishHelpSaysThePayloadIsNotValidated(t *testing.T) {
	out := help(t, "publish")
	for _, part := range []string{"NOT validated", "POST /v1/events/{type}", "--topic", "--file", "--id", "--ce-type", "--key", "rfd migrate up"} {
		if !strings.Contains(out, part) {
			t.Errorf("publish --help does not mention %q:\n%s", part, out)
		}
	}
}
