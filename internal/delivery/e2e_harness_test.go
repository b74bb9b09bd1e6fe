package delivery_test

// The harness of the end-to-end tests of the send-notification consumer: the
// real router, inbox, outbox and scheduler of one testenv combination, and
// real protocol peers on 127.0.0.1 for every provider:
//
//   - an SMTP server (emersion/go-smtp) for the email channel,
//   - a Twilio Messages API (httptest) for SMS, with idempotency tokens,
//   - FCM HTTP v1 and Google's OAuth token endpoint (JWT bearer grant),
//   - a webhook receiver that checks Standard Webhooks signatures itself,
//   - the service's own SMS status-callback endpoint.
//
// Data is made the way production makes it: notify.Notifier.Notify in a
// transaction, which writes the notification and its deliveries and
// publishes the commands through the outbox.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/core/templates"
	"github.com/rfd-notify/rfd/internal/delivery"
	"github.com/rfd-notify/rfd/internal/delivery/channels/push"
	"github.com/rfd-notify/rfd/internal/delivery/channels/sms"
	"github.com/rfd-notify/rfd/internal/delivery/channels/webhook"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/store"
	"github.com/rfd-notify/rfd/internal/testkit/providertest"
	"github.com/rfd-notify/rfd/internal/testkit/testenv"
)

// combinations the end-to-end tests run on: the embedded default and the
// production path.
var combinations = []string{testenv.SQLiteSQL, testenv.PostgresKafka}

// Bounds of the waits. Every wait is an Eventually; none is longer.
const (
	waitLong = 60 * time.Second
	// settle is how long "nothing more happens" is watched: longer than
	// the largest backoff (200ms with jitter) plus a scheduler tick.
	settle = 600 * time.Millisecond
)

// PHI the intents carry; it must never leave through email, SMS, push or
// webhook.
const (
	patientName = "Somchai Jaidee"
	patientRef  = "PT-778899"
	resultValue = "6.93 mmol/L"
)

// eachCombination runs fn on a fresh harness of every combination; opts
// tweak the configuration the harness derives from its peers.
func eachCombination(t *testing.T, fn func(t *testing.T, h *harness), opts ...func(*config.Config)) {
	t.Helper()
	for _, name := range combinations {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, newHarness(t, name, opts...))
		})
	}
}

// --- clock ----------------------------------------------------------------------

// clock runs at the speed of real time from a point the test may move, so
// backoffs elapse while quiet hours can be skipped.
type clock struct {
	mu     sync.Mutex
	base   time.Time
	origin time.Time
}

func newClock() *clock { return &clock{base: time.Now().UTC(), origin: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Since(c.origin)).UTC()
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.base, c.origin = t.UTC(), time.Now()
	c.mu.Unlock()
}

// --- provider peers: internal/providertest ---------------------------------------------

type (
	smtpBackend  = providertest.SMTP
	fakeTwilio   = providertest.Twilio
	hookReceiver = providertest.Hooks
)

const (
	twilioSID   = providertest.TwilioSID
	twilioToken = providertest.TwilioToken
	twilioFrom  = providertest.TwilioFrom
	badNumber   = providertest.BadNumber
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// parsedMail is a received message's headers and decoded alternative parts.
type parsedMail struct {
	Header mail.Header
	Order  []string          // content types of the parts, in order
	Parts  map[string]string // content type -> decoded body
}

func parseMail(t *testing.T, raw []byte) parsedMail {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("received mail does not parse: %v", err)
	}
	p := parsedMail{Header: m.Header, Parts: map[string]string{}}
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("mail Content-Type: %v", err)
	}
	if mediaType != "multipart/alternative" {
		t.Fatalf("mail is %s, want multipart/alternative", mediaType)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("mail part: %v", err)
		}
		ct, _, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if err != nil {
			t.Fatalf("mail part Content-Type: %v", err)
		}
		body, err := io.ReadAll(part) // decodes quoted-printable
		if err != nil {
			t.Fatalf("mail part body: %v", err)
		}
		p.Order = append(p.Order, ct)
		p.Parts[ct] = string(body)
	}
	return p
}

// twilioSignature is X-Twilio-Signature computed from Twilio's description,
// independently of sms.ValidateSignature: base64(HMAC-SHA1(auth token, the
// URL followed by each POST parameter name and value, sorted by name)).
func twilioSignature(token, fullURL string, form url.Values) string {
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	sort.Strings(names)
	data := fullURL
	for _, k := range names {
		for _, v := range form[k] {
			data += k + v
		}
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// --- push: FCM HTTP v1 and the OAuth token endpoint -----------------------------------

const (
	fcmProject  = "rfd-test"
	clientEmail = "rfd-push@rfd-test.iam.gserviceaccount.com"
	keyID       = "0123456789abcdef"
)

var (
	keyOnce sync.Once
	saKey   *rsa.PrivateKey
)

func serviceAccountKey(t *testing.T) *rsa.PrivateKey {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		saKey = k
	})
	return saKey
}

func serviceAccountJSON(t *testing.T, key *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": fcmProject, "private_key_id": keyID,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": clientEmail, "client_id": "1234567890", "token_uri": "https://oauth2.googleapis.com/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tokenServer implements the JWT bearer grant (RFC 7523) as Google's token
// endpoint does: it verifies the RS256 assertion with the service account's
// public key and issues an access token.
type tokenServer struct {
	pub *rsa.PublicKey
	url string

	mu     sync.Mutex
	issued map[string]bool
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost ||
		r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	if err := s.verify(r.PostForm.Get("assertion")); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": err.Error()})
		return
	}
	s.mu.Lock()
	tok := fmt.Sprintf("ya29.test-%d", len(s.issued)+1)
	s.issued[tok] = true
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
}

func (s *tokenServer) verify(assertion string) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return fmt.Errorf("assertion has %d parts", len(parts))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(s.pub, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var claims struct{ Iss, Scope, Aud string }
	if err := json.Unmarshal(raw, &claims); err != nil {
		return err
	}
	if claims.Iss != clientEmail || claims.Scope != push.Scope || claims.Aud != s.url {
		return fmt.Errorf("claims %+v", claims)
	}
	return nil
}

func (s *tokenServer) valid(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued[tok]
}

type fcmRequest struct {
	Token   string
	Message map[string]any
}

type fakeFCM struct {
	tokens *tokenServer

	mu           sync.Mutex
	reqs         []fcmRequest
	unregistered map[string]bool
	sent         int
}

func fcmError(w http.ResponseWriter, status int, statusName, errorCode, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": status, "message": msg, "status": statusName,
		"details": []any{map[string]string{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": errorCode}},
	}})
}

func (s *fakeFCM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/projects/"+fcmProject+"/messages:send" {
		fcmError(w, http.StatusNotFound, "NOT_FOUND", "", "Requested entity was not found.")
		return
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "Bearer ") || !s.tokens.valid(strings.TrimPrefix(auth, "Bearer ")) {
		fcmError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "", "Request had invalid authentication credentials.")
		return
	}
	var req struct {
		Message map[string]any `json:"message"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Message == nil {
		fcmError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid JSON payload received.")
		return
	}
	tok, _ := req.Message["token"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, fcmRequest{Token: tok, Message: req.Message})
	if s.unregistered[tok] {
		fcmError(w, http.StatusNotFound, "NOT_FOUND", push.ErrUnregistered, "Requested entity was not found.")
		return
	}
	s.sent++
	writeJSON(w, http.StatusOK, map[string]string{"name": fmt.Sprintf("projects/%s/messages/%d", fcmProject, 1000+s.sent)})
}

func (s *fakeFCM) requests() []fcmRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fcmRequest(nil), s.reqs...)
}

func (s *fakeFCM) requestsWithToken(tok string) int {
	n := 0
	for _, r := range s.requests() {
		if r.Token == tok {
			n++
		}
	}
	return n
}

// --- webhook receiver ---------------------------------------------------------------

// verifyWebhook checks a request the Standard Webhooks way, written from
// the specification and not from the sender's code: signed content is
// "id.timestamp.body", the key is the base64 secret after "whsec_", the
// header holds space-separated "v1,<base64 HMAC-SHA256>" entries of which
// one must match, and the timestamp must be within 5 minutes.
func verifyWebhook(secret string, h http.Header, body []byte) error {
	id, tsText, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || tsText == "" || sigs == "" {
		return errors.New("missing headers")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp: %w", err)
	}
	if d := time.Since(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp outside tolerance: %v", d)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + tsText + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, entry := range strings.Split(sigs, " ") {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		if got, err := base64.StdEncoding.DecodeString(sig); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// --- the harness ----------------------------------------------------------------------

type harness struct {
	t     *testing.T
	env   *testenv.Env
	cfg   config.Config
	clock *clock

	smtp     *smtpBackend
	twilio   *fakeTwilio
	fcm      *fakeFCM
	hooks    *hookReceiver
	hooksURL string
	// callbackURL is the public URL of the SMS status-callback endpoint.
	callbackURL string

	notifier   *notify.Notifier
	dispatcher *delivery.Dispatcher

	mu      sync.Mutex
	inApp   []delivery.InAppEvent
	poisons []*message.Message
}

// Delivery options of every test: small backoffs, four attempts.
var testOptions = delivery.Options{MaxAttempts: 4, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}

func newHarness(t *testing.T, combination string, opts ...func(*config.Config)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock()}

	// Provider peers first: they close after the router has stopped.
	h.smtp = providertest.StartSMTP(t)
	smtpPort := h.smtp.Port
	h.twilio = providertest.StartTwilio(t)
	h.hooks = providertest.StartHooks(t)
	ts := &tokenServer{pub: &serviceAccountKey(t).PublicKey, issued: map[string]bool{}}
	tokenSrv := httptest.NewServer(ts)
	t.Cleanup(tokenSrv.Close)
	ts.url = tokenSrv.URL + "/token"
	h.fcm = &fakeFCM{tokens: ts, unregistered: map[string]bool{}}
	fcmSrv := httptest.NewServer(h.fcm)
	t.Cleanup(fcmSrv.Close)
	h.hooksURL = h.hooks.URL
	// The service's own API, for the SMS status callbacks: its address is
	// the public URL; it starts once the database exists.
	cbSrv := httptest.NewUnstartedServer(nil)
	keyFile := filepath.Join(t.TempDir(), "fcm-service-account.json")
	if err := os.WriteFile(keyFile, serviceAccountJSON(t, serviceAccountKey(t)), 0o600); err != nil {
		t.Fatal(err)
	}

	// The channels are configured as in production, through RFD_* settings.
	peers := func(c *config.Config) {
		c.SMTPHost, c.SMTPPort, c.SMTPTLS = "127.0.0.1", smtpPort, "none"
		c.TwilioBaseURL, c.TwilioAccountSID, c.TwilioAuthToken, c.TwilioFrom = h.twilio.URL, twilioSID, twilioToken, twilioFrom
		c.PublicURL = "http://" + cbSrv.Listener.Addr().String()
		c.FCMBaseURL, c.FCMProjectID, c.FCMCredentialsFile, c.FCMTokenURL = fcmSrv.URL, fcmProject, keyFile, ts.url
		c.WebhookAllowLoopback = true
		c.SMSPerDoctorPerHour = 100
	}
	h.env = testenv.New(t, combination, append([]func(*config.Config){peers}, opts...)...)
	h.cfg = h.env.Config
	cfg := h.cfg
	h.callbackURL = "http://" + cbSrv.Listener.Addr().String()
	h.env.EnsureTopics(t, cfg.TopicSendNotification, cfg.TopicInApp, cfg.TopicPoison)

	mux := http.NewServeMux()
	mux.Handle("POST "+delivery.SMSCallbackPath, delivery.NewSMSCallbacks(h.env.DB, h.env.Outbox, cfg.TopicSendNotification, cfg.TwilioAuthToken, cfg.PublicURL, h.clock.Now, h.env.Logger))
	cbSrv.Config.Handler = mux
	cbSrv.Start()
	t.Cleanup(cbSrv.Close)

	senders, err := delivery.SendersFromConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(senders.Close) // after the router has stopped: cleanups run last first
	if senders.Email == nil || senders.SMS == nil || senders.Push == nil || senders.Webhook == nil {
		t.Fatalf("a channel is not configured: %+v", senders)
	}

	h.notifier = notify.New(h.env.Outbox, cfg.TopicSendNotification, cfg.PortalURL, h.clock.Now)
	dopts := testOptions
	dopts.SendTopic, dopts.InAppTopic, dopts.ConsumerName = cfg.TopicSendNotification, cfg.TopicInApp, config.ConsumerSendNotification
	dopts.Batch = cfg.DeliveriesBatch // the production default: concurrent commands share transactions
	h.dispatcher, err = delivery.NewDispatcher(h.env.DB, h.env.Inbox, h.env.Outbox, senders, dopts, h.clock.Now, h.env.Registry, h.env.Logger)
	if err != nil {
		t.Fatal(err)
	}

	rt := h.env.NewRouter(t)
	consumer, ok := handlers.Consumers(handlers.Deps{Config: cfg, Inbox: h.env.Inbox, Outbox: h.env.Outbox,
		Notifier: h.notifier, Dispatcher: h.dispatcher, Now: h.clock.Now})[config.ConsumerSendNotification]
	if !ok {
		t.Fatal("no send-notification consumer")
	}
	if err := rt.AddConsumer(consumer); err != nil {
		t.Fatal(err)
	}
	h.read(cfg.TopicInApp, "test-inapp-reader", func(m *message.Message) {
		var ev delivery.InAppEvent
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			t.Errorf("in-app event does not decode: %v", err)
			return
		}
		h.mu.Lock()
		h.inApp = append(h.inApp, ev)
		h.mu.Unlock()
	})
	h.read(cfg.TopicPoison, "test-poison-reader", func(m *message.Message) {
		h.mu.Lock()
		h.poisons = append(h.poisons, m)
		h.mu.Unlock()
	})
	testenv.Run(t, rt)

	sched := delivery.NewScheduler(h.env.DB, h.env.Outbox, cfg.TopicSendNotification, h.clock.Now, h.env.Logger)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sched.Run(ctx, 50*time.Millisecond)
	}()
	t.Cleanup(func() { cancel(); <-done })

	// Registered last, so it runs first: nothing may have been poisoned.
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, m := range h.poisons {
			t.Errorf("message %s was poisoned: %s", m.UUID, m.Metadata.Get("reason_poisoned"))
		}
	})
	return h
}

func (h *harness) read(topic, group string, fn func(*message.Message)) {
	h.env.Read(h.t, topic, group, fn)
}

func (h *harness) inAppEventsOf(notificationID string) []delivery.InAppEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []delivery.InAppEvent
	for _, ev := range h.inApp {
		if ev.NotificationID == notificationID {
			out = append(out, ev)
		}
	}
	return out
}

// --- fixtures -------------------------------------------------------------------------

// prefs returns the default preferences with the channels of categories
// replaced and the given fallback order.
func prefs(channels map[domain.Category][]domain.Channel, fallback ...domain.Channel) domain.Preferences {
	p := domain.DefaultPreferences()
	for c, chs := range channels {
		p.Channels[c] = chs
	}
	if fallback != nil {
		p.FallbackOrder = fallback
	}
	return p
}

// addDoctor registers a doctor directly in the database, as user-created
// would have, with email and phone and the given preferences.
func (h *harness) addDoctor(ext string, p domain.Preferences, mods ...func(*domain.Doctor)) domain.Doctor {
	h.t.Helper()
	now := h.clock.Now()
	doc := domain.Doctor{
		ID: "doc-" + ext, ExternalUserID: ext, Name: "Dr. " + ext, LicenceNumber: "MD-" + ext, Specialty: "Cardiology",
		Email: ext + "@clinic.example", Phone: "+66812345678", Locale: "en", TimeZone: "Asia/Bangkok", Active: true,
		ProfileVersion: now, CreatedAt: now, UpdatedAt: now,
	}
	for _, m := range mods {
		m(&doc)
	}
	ctx := context.Background()
	if _, err := h.env.DB.NewInsert().Model(&doc).Exec(ctx); err != nil {
		h.t.Fatalf("insert doctor: %v", err)
	}
	row := store.NewPreferencesRow(doc.ID, p, now)
	if _, err := h.env.DB.NewInsert().Model(&row).Exec(ctx); err != nil {
		h.t.Fatalf("insert preferences: %v", err)
	}
	return doc
}

func (h *harness) addDevice(doc domain.Doctor, token string) {
	h.t.Helper()
	now := h.clock.Now()
	if _, err := h.env.DB.NewRaw(`INSERT INTO devices (token, doctor_id, platform, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		token, doc.ID, "android", now, now).Exec(context.Background()); err != nil {
		h.t.Fatalf("insert device: %v", err)
	}
}

// addEndpoint registers a webhook endpoint of doc on the receiver's path
// and returns its id and signing secret.
func (h *harness) addEndpoint(doc domain.Doctor, path string) (id, secret string) {
	h.t.Helper()
	id, secret = "ep-"+doc.ExternalUserID+strings.ReplaceAll(path, "/", "-"), webhook.GenerateSecret()
	now := h.clock.Now()
	if _, err := h.env.DB.NewRaw(`INSERT INTO webhook_endpoints (id, doctor_id, url, secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		id, doc.ID, h.hooksURL+path, secret, now, now).Exec(context.Background()); err != nil {
		h.t.Fatalf("insert webhook endpoint: %v", err)
	}
	return id, secret
}

// resultIntent is a result notification whose detail carries patient data.
func resultIntent(key string) notify.Intent {
	return notify.Intent{
		Key: "checkup/" + key + "/result/1", SourceEventID: "ev-" + key,
		Type: templates.TypeResultAvailable, Category: domain.CategoryResults, Priority: domain.PriorityNormal,
		Detail: templates.Data{PatientName: patientName, PatientRef: patientRef, TestName: "Potassium",
			ResultValue: resultValue, CheckupID: key, OrderID: "ORD-" + key},
		CheckupID: key, ResultVersion: 1, OrderID: "ORD-" + key,
	}
}

func criticalIntent(key string) notify.Intent {
	in := resultIntent(key)
	in.Key = "checkup/" + key + "/critical/1"
	in.Type = templates.TypeCriticalResult
	in.Category = domain.CategoryCriticalResults
	in.Priority = domain.PriorityCritical
	return in
}

// notify makes the intent's notification for doctor ext as production does:
// Notify in one transaction, then `also` in that same transaction. It
// returns the notification id.
func (h *harness) notify(ext string, in notify.Intent, also ...func(ctx context.Context, tx bun.Tx, notificationID string) error) string {
	h.t.Helper()
	var id string
	err := h.env.DB.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
		out, err := h.notifier.Notify(ctx, tx, in, []string{ext})
		if err != nil {
			return err
		}
		if len(out.Created) != 1 {
			return fmt.Errorf("notify created %v (pending %v), want one notification", out.Created, out.Pending)
		}
		id = out.Created[0]
		for _, fn := range also {
			if err := fn(ctx, tx, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		h.t.Fatalf("notify: %v", err)
	}
	return id
}

// --- reading the outcome ---------------------------------------------------------------

func (h *harness) delivery(id string) store.Delivery {
	h.t.Helper()
	var d store.Delivery
	if err := h.env.DB.NewSelect().Model(&d).Where("id = ?", id).Scan(context.Background()); err != nil {
		h.t.Fatalf("load delivery %s: %v", id, err)
	}
	return d
}

// waitStatus waits until delivery id has status and returns it.
func (h *harness) waitStatus(id, status string) store.Delivery {
	h.t.Helper()
	var d store.Delivery
	testenv.Eventually(h.t, waitLong, "delivery "+id+" "+status, func() (bool, string) {
		d = store.Delivery{} // bun leaves a set pointer field set when the column is NULL
		err := h.env.DB.NewSelect().Model(&d).Where("id = ?", id).Scan(context.Background())
		if err != nil {
			return false, err.Error()
		}
		return d.Status == status, fmt.Sprintf("status %s (%s), attempt %d", d.Status, d.StatusReason, d.Attempt)
	})
	return d
}

type attemptRow struct {
	Attempt           int    `bun:"attempt"`
	Provider          string `bun:"provider"`
	ProviderMessageID string `bun:"provider_message_id"`
	Outcome           string `bun:"outcome"`
	Error             string `bun:"error"`
}

func (h *harness) attempts(deliveryID string) []attemptRow {
	h.t.Helper()
	var rows []attemptRow
	if err := h.env.DB.NewRaw(`SELECT attempt, provider, provider_message_id, outcome, error FROM delivery_attempts
WHERE delivery_id = ? ORDER BY attempt, id`, deliveryID).Scan(context.Background(), &rows); err != nil {
		h.t.Fatalf("load attempts: %v", err)
	}
	return rows
}

func (h *harness) outcomes(deliveryID string) []string {
	var out []string
	for _, a := range h.attempts(deliveryID) {
		out = append(out, fmt.Sprintf("%d:%s", a.Attempt, a.Outcome))
	}
	return out
}

func (h *harness) scalar(query string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.env.DB.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// deliveriesOf lists a notification's deliveries by channel.
func (h *harness) deliveriesOf(notificationID string) map[domain.Channel]store.Delivery {
	h.t.Helper()
	var ds []store.Delivery
	if err := h.env.DB.NewSelect().Model(&ds).Where("notification_id = ?", notificationID).Scan(context.Background()); err != nil {
		h.t.Fatalf("load deliveries: %v", err)
	}
	out := map[domain.Channel]store.Delivery{}
	for _, d := range ds {
		out[d.Channel] = d
	}
	return out
}

// assertNoPHI fails if text carries any of the intent's patient data.
func assertNoPHI(t *testing.T, where, text string) {
	t.Helper()
	for _, phi := range []string{patientName, patientRef, resultValue, "Somchai"} {
		if strings.Contains(text, phi) {
			t.Errorf("%s carries patient data %q:\n%s", where, phi, text)
		}
	}
}

// postCallback posts one Twilio status callback for a message to the
// StatusCallback URL Twilio was given, signed with signer's token.
func (h *harness) postCallback(callbackURL string, form url.Values, signature string) int {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, callbackURL, strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(sms.SignatureHeader, signature)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Errorf("post callback: %v", err) // may run off the test goroutine
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}
