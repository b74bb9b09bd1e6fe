package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/platform/config"
)

// TestWebhookRegistrationRefusesWhatDeliveryRefuses: an endpoint delivery
// would never call is refused when it is registered, 422 naming body.url,
// and nothing is stored: non-public literals in every spelling, names
// resolving to them (the fixture's resolver stands in for DNS), user
// information, non-canonical IPv4 forms, plain http and names that do not
// exist. Public addresses and names are 201.
func TestWebhookRegistrationRefusesWhatDeliveryRefuses(t *testing.T) {
	f := newFixture(t, combinations[0])
	writer := f.apiKey("crm", auth.ScopeNotificationsWrite)
	register := func(url string) response {
		return f.do(http.MethodPost, "/v1/webhooks", writer, map[string]any{"clinic": "Sukhumvit Heart Clinic", "url": url})
	}
	for _, url := range []string{
		"https://127.0.0.1/hook",
		"https://127.0.0.1:8443/hook",
		"https://169.254.169.254/latest/meta-data",
		"https://10.0.0.1/hook",
		"https://192.168.1.10/hook",
		"https://172.16.5.4/hook",
		"https://[::1]/hook",
		"https://[::ffff:127.0.0.1]/hook",
		"https://[::ffff:a9fe:a9fe]/hook", // 169.254.169.254, mapped
		"https://[fe80::1%25eth0]/hook",
		"https://localhost/hook",
		"https://localhost.:8443/hook",
		"https://127.0.0.1.nip.io/hook",
		"https://10.0.0.5.nip.io/hook",
		"https://rebind.clinic.example/hook", // one public, one private address
		"https://user@hooks.example/hook",
		"https://user:secret@hooks.example/hook",
		"https://hooks.example@127.0.0.1/hook",
		"https://2130706433/hook",
		"https://0x7f.1/hook",
		"https://0177.0.0.1/hook",
		"http://hooks.example/hook",
		"ftp://hooks.example/hook",
		"https://nowhere.example/hook",
	} {
		r := register(url)
		p := r.problem(t, http.StatusUnprocessableEntity)
		if !p.hasLocation("body.url") {
			t.Errorf("%s: problem %+v does not name body.url", url, p)
		}
		if strings.Contains(string(r.body), "192.168.10.10") || strings.Contains(string(r.body), "secret") {
			t.Errorf("%s: the problem says too much: %s", url, r.body)
		}
	}
	if n := f.scalar(`SELECT COUNT(*) FROM webhook_endpoints`); n != 0 {
		t.Fatalf("%d refused endpoints stored", n)
	}

	for _, url := range []string{"https://93.184.216.34/hook", "https://[2606:2800:220:1::1]/hook", "https://hooks.example/rfd?token=abc"} {
		var created api.WebhookWithSecret
		register(url).ok(t, http.StatusCreated, &created)
		if created.URL != url {
			t.Errorf("stored %q, want %q", created.URL, url)
		}
	}
}

// TestLoopbackWebhooksStayTestModeOnly: RFD_WEBHOOK_ALLOW_LOOPBACK opens
// loopback (and plain http) at registration as at delivery, nothing else.
func TestLoopbackWebhooksStayTestModeOnly(t *testing.T) {
	f := newFixture(t, combinations[0], func(c *config.Config) { c.WebhookAllowLoopback = true })
	writer := f.apiKey("crm", auth.ScopeNotificationsWrite)
	for _, url := range []string{"http://localhost:9999/hook", "http://127.0.0.1.nip.io:9999/hook", "https://[::1]/hook"} {
		f.do(http.MethodPost, "/v1/webhooks", writer, map[string]any{"clinic": "Test", "url": url}).ok(t, http.StatusCreated, nil)
	}
	for _, url := range []string{"http://10.0.0.1/hook", "http://169.254.169.254/", "http://10.0.0.5.nip.io/hook", "http://user@localhost:9999/hook"} {
		f.do(http.MethodPost, "/v1/webhooks", writer, map[string]any{"clinic": "Test", "url": url}).problem(t, http.StatusUnprocessableEntity)
	}
}
