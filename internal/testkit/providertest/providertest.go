// Package providertest runs real protocol peers of the delivery channels on
// 127.0.0.1 for tests, benchmarks and chaos runs: an SMTP server
// (emersion/go-smtp), a Twilio Messages API that honours idempotency tokens,
// and a webhook receiver. Each records what it received, so a test can count
// what reached a provider per delivery.
package providertest

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	smtp "github.com/emersion/go-smtp"

	"github.com/rfd-notify/rfd/internal/delivery/channels/sms"
)

// --- SMTP -------------------------------------------------------------------

// Mail is one message the SMTP server accepted.
type Mail struct {
	From, To string
	Data     []byte
	At       time.Time
}

// MessageID returns the Message-ID header of the mail without angle brackets,
// or "" when it has none or does not parse.
func (m Mail) MessageID() string {
	msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
	if err != nil {
		return ""
	}
	return strings.Trim(msg.Header.Get("Message-Id"), "<> ")
}

// SMTP is an SMTP server that accepts every message unless told to reject
// a recipient.
type SMTP struct {
	Port int

	mu      sync.Mutex
	msgs    []Mail
	rcpts   map[string]int             // RCPT TO attempts per address
	rejects map[string]*smtp.SMTPError // RCPT TO address -> reply
}

// StartSMTP starts an SMTP server on a free loopback port; it closes when the
// test ends.
func StartSMTP(t testing.TB) *SMTP {
	t.Helper()
	s, closeFn, err := NewSMTP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeFn)
	return s
}

// NewSMTP starts an SMTP server on a free loopback port and returns it with
// the function that stops it (for commands that have no testing.TB).
func NewSMTP() (*SMTP, func(), error) {
	s := &SMTP{rcpts: map[string]int{}, rejects: map[string]*smtp.SMTPError{}}
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("smtp listen: %w", err)
	}
	go func() { _ = srv.Serve(l) }()
	s.Port = l.Addr().(*net.TCPAddr).Port
	return s, func() { _ = srv.Close() }, nil
}

// NewSession implements smtp.Backend.
func (s *SMTP) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{be: s}, nil }

// Reject makes RCPT TO addr answer with the given reply.
func (s *SMTP) Reject(addr string, code int, enhanced smtp.EnhancedCode, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejects[addr] = &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: msg}
}

// Messages returns the accepted messages in order.
func (s *SMTP) Messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.msgs...)
}

// RcptCount returns how many RCPT TO commands named addr.
func (s *SMTP) RcptCount(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcpts[addr]
}

type smtpSession struct {
	be  *SMTP
	cur Mail
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.cur.From = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.be.mu.Lock()
	defer s.be.mu.Unlock()
	s.be.rcpts[to]++
	if rej, ok := s.be.rejects[to]; ok {
		return rej
	}
	s.cur.To = to
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = data
	s.cur.At = time.Now()
	s.be.mu.Lock()
	s.be.msgs = append(s.be.msgs, s.cur)
	s.be.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.cur = Mail{} }
func (s *smtpSession) Logout() error { return nil }

// --- SMS: Twilio's Messages API ---------------------------------------------

// The account the Twilio server accepts.
const (
	TwilioSID   = "AC00000000000000000000000000000001"
	TwilioToken = "test-auth-token"
	TwilioFrom  = "+15005550006"
	BadNumber   = "+15005550001" // Twilio's magic "invalid number" test value
)

// TwilioRequest is one create request the server answered.
type TwilioRequest struct {
	Form  url.Values
	Token string // I-Twilio-Idempotency-Token
	SID   string // sid answered, "" for an error
	Code  int    // HTTP status answered
	At    time.Time
}

// Twilio speaks the part of Twilio's Messages API the client uses: it
// checks the path, basic auth and form fields, honours the idempotency token
// (same token, same sid, billed once) and can fail on demand. Set the
// exported fields through Set.
type Twilio struct {
	URL string

	mu        sync.Mutex
	creates   int               // billable creates
	byToken   map[string]string // idempotency token -> sid
	billed    map[string]int    // idempotency token -> billable creates
	reqs      []TwilioRequest
	FailFirst int           // answer 503 to this many requests first
	OutageFor time.Duration // from the first request on, answer 503 (Retry-After: 1) this long
	outageEnd time.Time
	Down      map[string]bool // To numbers always answered 503
}

// StartTwilio starts the server; it closes when the test ends.
func StartTwilio(t testing.TB) *Twilio {
	t.Helper()
	f, closeFn := NewTwilio()
	t.Cleanup(closeFn)
	return f
}

// NewTwilio starts the server and returns it with the function that stops it.
func NewTwilio() (*Twilio, func()) {
	f := &Twilio{byToken: map[string]string{}, billed: map[string]int{}, Down: map[string]bool{}}
	srv := httptest.NewServer(f)
	f.URL = srv.URL
	return f, srv.Close
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func twilioError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{
		"code": code, "message": msg, "status": status,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
	})
}

func (f *Twilio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/"+TwilioSID+"/Messages.json" {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource was not found")
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != TwilioSID || pass != TwilioToken {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		twilioError(w, http.StatusBadRequest, 20001, "bad content type "+ct)
		return
	}
	if err := r.ParseForm(); err != nil {
		twilioError(w, http.StatusBadRequest, 20001, "bad form")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	req := TwilioRequest{Form: r.PostForm, Token: r.Header.Get(sms.IdempotencyHeader), At: time.Now()}
	answer := func(code int) {
		req.Code = code
		f.reqs = append(f.reqs, req)
	}
	to := r.PostForm.Get("To")
	if f.OutageFor > 0 && f.outageEnd.IsZero() {
		f.outageEnd = time.Now().Add(f.OutageFor)
	}
	switch {
	case f.FailFirst > 0:
		f.FailFirst--
		answer(http.StatusServiceUnavailable)
		twilioError(w, http.StatusServiceUnavailable, 20500, "Service Unavailable")
		return
	case time.Now().Before(f.outageEnd):
		answer(http.StatusServiceUnavailable)
		w.Header().Set("Retry-After", "1")
		twilioError(w, http.StatusServiceUnavailable, 20500, "Service Unavailable")
		return
	case f.Down[to]:
		answer(http.StatusServiceUnavailable)
		twilioError(w, http.StatusServiceUnavailable, 20500, "Service Unavailable")
		return
	case to == BadNumber:
		answer(http.StatusBadRequest)
		twilioError(w, http.StatusBadRequest, 21211, "The 'To' number is not a valid phone number.")
		return
	case to == "" || r.PostForm.Get("From") == "" || r.PostForm.Get("Body") == "":
		answer(http.StatusBadRequest)
		twilioError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
		return
	}
	sid, seen := f.byToken[req.Token]
	if !seen || req.Token == "" {
		f.creates++
		f.billed[req.Token]++
		sid = fmt.Sprintf("SM%032d", f.creates)
		if req.Token != "" {
			f.byToken[req.Token] = sid
		}
	}
	req.SID = sid
	answer(http.StatusCreated)
	writeJSON(w, http.StatusCreated, map[string]any{
		"sid": sid, "status": "queued", "account_sid": TwilioSID,
		"to": to, "from": r.PostForm.Get("From"), "body": r.PostForm.Get("Body"),
		"error_code": nil, "error_message": nil,
	})
}

// Snapshot returns the billable creates and every request so far.
func (f *Twilio) Snapshot() (creates int, reqs []TwilioRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates, append([]TwilioRequest(nil), f.reqs...)
}

// Billed returns the billable creates per idempotency token.
func (f *Twilio) Billed() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.billed))
	for k, v := range f.billed {
		out[k] = v
	}
	return out
}

// RequestsFor are the create requests of one delivery (its idempotency token).
func (f *Twilio) RequestsFor(deliveryID string) []TwilioRequest {
	_, reqs := f.Snapshot()
	var out []TwilioRequest
	for _, r := range reqs {
		if r.Token == deliveryID {
			out = append(out, r)
		}
	}
	return out
}

// Set changes the server's failure settings under its lock.
func (f *Twilio) Set(fn func(f *Twilio)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// --- webhooks ---------------------------------------------------------------

// HookRequest is one request the webhook receiver answered.
type HookRequest struct {
	Path   string
	Header http.Header
	Body   []byte
	Status int
	At     time.Time
}

// Hooks answers per path: scripted statuses in order (the last one repeats),
// 204 for a path without a script.
type Hooks struct {
	URL string

	mu      sync.Mutex
	reqs    []HookRequest
	scripts map[string][]int
	hits    map[string]int
}

// StartHooks starts the receiver; it closes when the test ends.
func StartHooks(t testing.TB) *Hooks {
	t.Helper()
	h, closeFn := NewHooks()
	t.Cleanup(closeFn)
	return h
}

// NewHooks starts the receiver and returns it with the function that stops it.
func NewHooks() (*Hooks, func()) {
	h := &Hooks{scripts: map[string][]int{}, hits: map[string]int{}}
	srv := httptest.NewServer(h)
	h.URL = srv.URL
	return h, srv.Close
}

func (h *Hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	status := http.StatusNoContent
	if s := h.scripts[r.URL.Path]; len(s) > 0 {
		status = s[min(h.hits[r.URL.Path], len(s)-1)]
	}
	h.hits[r.URL.Path]++
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		status = http.StatusBadRequest
	}
	h.reqs = append(h.reqs, HookRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Status: status, At: time.Now()})
	h.mu.Unlock()
	w.WriteHeader(status)
}

// Script sets the statuses path answers with, in order.
func (h *Hooks) Script(path string, statuses ...int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.scripts[path] = statuses
}

// Requests returns the requests to path in order.
func (h *Hooks) Requests(path string) []HookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []HookRequest
	for _, r := range h.reqs {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// All returns every request in order.
func (h *Hooks) All() []HookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]HookRequest(nil), h.reqs...)
}
