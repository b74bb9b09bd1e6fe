package email_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	smtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rfd-notify/rfd/internal/delivery/channels"
	"github.com/rfd-notify/rfd/internal/delivery/channels/email"
)

// --- a real SMTP server (emersion/go-smtp) on 127.0.0.1:0 -------------------

type received struct {
	From, To string
	Data     []byte
	TLS      bool   // session was encrypted when MAIL FROM arrived
	AuthUser string // "" when the session did not authenticate
	Helo     string
}

type backend struct {
	mu       sync.Mutex
	msgs     []received
	user     string // when set, sessions must AUTH PLAIN with user/pass
	pass     string
	rejects  map[string]*smtp.SMTPError // RCPT TO address -> reply
	dataHold chan struct{}              // when set, DATA blocks until closed
	// dropAfterAccept closes the connection right after it answered 250 to
	// a message, as a server restarting between two messages would.
	dropAfterAccept bool
	// mail421 answers MAIL with 421 (closing the channel): on every
	// session, or only on one that has carried a message already, as a
	// server that timed the idle session out would.
	mail421, mail421OnReuse bool
	// dropInData loses the connection inside DATA, after the message was
	// read and before the reply: the client cannot know whether it landed.
	dropInData bool
	// dataReject, when set, refuses the message after reading it.
	dataReject *smtp.SMTPError

	// Connections opened (go-smtp makes a second Session after STARTTLS,
	// so they are counted by connection), Sessions open now and at most.
	conns         map[*smtp.Conn]bool
	open, maxOpen int
	inData        int // sessions inside DATA now
	dataCalls     int
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns == nil {
		b.conns = map[*smtp.Conn]bool{}
	}
	b.conns[c] = true
	b.open++
	b.maxOpen = max(b.maxOpen, b.open)
	return &session{be: b, conn: c}, nil
}

func (b *backend) messages() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.msgs...)
}

// counts returns the connections opened and the sessions open now.
func (b *backend) counts() (opened, open int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns), b.open
}

func (b *backend) set(f func(b *backend)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b)
}

type session struct {
	be   *backend
	conn *smtp.Conn
	cur  received
	// accepted counts the messages this session took.
	accepted int
	// resets counts Reset calls since the last accepted message: go-smtp
	// resets once after DATA itself, after its 250.
	resets int
}

func (s *session) AuthMechanisms() []string {
	if s.be.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.be.user || password != s.be.pass {
			return smtp.ErrAuthFailed // 535 5.7.8
		}
		s.cur.AuthUser = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.be.user != "" && s.cur.AuthUser == "" {
		return smtp.ErrAuthRequired
	}
	s.be.mu.Lock()
	closing := s.be.mail421 || (s.be.mail421OnReuse && s.accepted > 0)
	s.be.mu.Unlock()
	if closing {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Idle timeout, bye bye"}
	}
	_, s.cur.TLS = s.conn.TLSConnectionState()
	s.cur.From = from
	s.cur.Helo = s.conn.Hostname()
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if rej, ok := s.be.rejects[to]; ok {
		return rej
	}
	s.cur.To = to
	return nil
}

func (s *session) Data(r io.Reader) error {
	s.be.mu.Lock()
	s.be.inData++
	s.be.dataCalls++
	hold, drop, reject := s.be.dataHold, s.be.dropInData, s.be.dataReject
	s.be.mu.Unlock()
	defer s.be.set(func(b *backend) { b.inData-- })
	if hold != nil {
		<-hold
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if drop {
		_ = s.conn.Conn().Close()
		return errors.New("connection lost")
	}
	if reject != nil {
		return reject
	}
	s.cur.Data = data
	s.be.mu.Lock()
	s.be.msgs = append(s.be.msgs, s.cur)
	s.be.mu.Unlock()
	s.accepted++
	s.resets = 0
	return nil
}

func (s *session) Reset() {
	s.resets++
	if s.be.dropAfterAccept && s.accepted > 0 && s.resets == 1 {
		// The net.Conn itself: smtp.Conn.Close would wait for the lock
		// go-smtp holds while it calls Reset.
		_ = s.conn.Conn().Close()
	}
	user := s.cur.AuthUser // authentication survives RSET
	s.cur = received{AuthUser: user}
}

func (s *session) Logout() error {
	s.be.set(func(b *backend) { b.open-- })
	return nil
}

type serverOpts struct {
	starttls *tls.Config // offer STARTTLS
	implicit *tls.Config // whole connection is TLS
}

func startServer(t testing.TB, be *backend, o serverOpts) (host string, port int) {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLSConfig = o.starttls
	// Plain-text AUTH is only acceptable in the no-TLS tests on loopback.
	srv.AllowInsecureAuth = o.starttls == nil && o.implicit == nil

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if o.implicit != nil {
		l = tls.NewListener(l, o.implicit)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := l.Addr().(*net.TCPAddr)
	return "127.0.0.1", addr.Port
}

// selfSigned returns a server certificate for 127.0.0.1/localhost and a
// client TLS config that trusts exactly that certificate.
func selfSigned(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rfd-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool}
	return server, client
}

func testMessage(id string) email.Message {
	return email.Message{
		To:         "dr.house@clinic.example",
		Subject:    "A new result is ready",
		Text:       "A new result is ready - open the portal.",
		HTML:       "<p>A new result is ready - <a href=\"https://portal.example\">open the portal</a>.</p>",
		DeliveryID: id,
	}
}

// assertMIME checks the received message: headers, Message-ID and both
// alternative parts with their content.
func assertMIME(t *testing.T, raw []byte, want email.Message) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	assert.Equal(t, "<"+want.DeliveryID+"@rfd-notify>", m.Header.Get("Message-ID"))
	assert.Equal(t, want.Subject, m.Header.Get("Subject"))
	assert.Contains(t, m.Header.Get("To"), want.To)
	assert.NotEmpty(t, m.Header.Get("Date"))

	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mediaType)

	parts := map[string]string{}
	var order []string
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		ct, _, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		require.NoError(t, err)
		body, err := io.ReadAll(p) // multipart.Reader decodes quoted-printable
		require.NoError(t, err)
		parts[ct] = strings.TrimSpace(string(body))
		order = append(order, ct)
	}
	assert.Equal(t, []string{"text/plain", "text/html"}, order, "HTML must be the last (preferred) alternative")
	assert.Equal(t, want.Text, parts["text/plain"])
	assert.Equal(t, want.HTML, parts["text/html"])
}

func TestSendPlainMultipartAndStableMessageID(t *testing.T) {
	be := &backend{}
	host, port := startServer(t, be, serverOpts{})
	c, err := email.New(email.Config{
		Host: host, Port: port, TLS: email.TLSNone,
		From: "RFD Notify <noreply@rfd.example>", HeloName: "rfd-test.example", Timeout: 5 * time.Second,
	}, nil)
	require.NoError(t, err)

	msg := testMessage("0190f3a2-6b7c-7d8e-9f00-112233445566")
	out, err := c.Send(context.Background(), msg)
	require.NoError(t, err)
	assert.Equal(t, "smtp", out.Provider)
	assert.Equal(t, "<0190f3a2-6b7c-7d8e-9f00-112233445566@rfd-notify>", out.ProviderMessageID)

	// A retry of the same delivery carries the same Message-ID.
	out2, err := c.Send(context.Background(), msg)
	require.NoError(t, err)
	assert.Equal(t, out.ProviderMessageID, out2.ProviderMessageID)

	got := be.messages()
	require.Len(t, got, 2)
	for _, r := range got {
		assert.Equal(t, "noreply@rfd.example", r.From)
		assert.Equal(t, "dr.house@clinic.example", r.To)
		assert.Equal(t, "rfd-test.example", r.Helo)
		assert.False(t, r.TLS)
		assertMIME(t, r.Data, msg)
	}
}

func TestSendSTARTTLS(t *testing.T) {
	srvTLS, cliTLS := selfSigned(t)
	be := &backend{}
	host, port := startServer(t, be, serverOpts{starttls: srvTLS})
	c, err := email.New(email.Config{
		Host: host, Port: port, TLS: email.TLSStartTLS, From: "noreply@rfd.example",
		Timeout: 5 * time.Second, TLSConfig: cliTLS,
	}, &net.Dialer{})
	require.NoError(t, err)

	msg := testMessage("d-starttls")
	_, err = c.Send(context.Background(), msg)
	require.NoError(t, err)

	got := be.messages()
	require.Len(t, got, 1)
	assert.True(t, got[0].TLS, "message must travel after STARTTLS")
	assertMIME(t, got[0].Data, msg)
}

func TestSendSTARTTLSUntrustedCertIsRefused(t *testing.T) {
	srvTLS, _ := selfSigned(t)
	be := &backend{}
	host, port := startServer(t, be, serverOpts{starttls: srvTLS})
	// System roots do not trust the test certificate.
	c, err := email.New(email.Config{Host: host, Port: port, TLS: email.TLSStartTLS, From: "noreply@rfd.example", Timeout: 5 * time.Second}, nil)
	require.NoError(t, err)
	_, err = c.Send(context.Background(), testMessage("d-untrusted"))
	require.Error(t, err)
	assert.Empty(t, be.messages())
}

func TestSendImplicitTLSWithAuthPlain(t *testing.T) {
	srvTLS, cliTLS := selfSigned(t)
	be := &backend{user: "rfd", pass: "s3cret"}
	host, port := startServer(t, be, serverOpts{implicit: srvTLS})
	cfg := email.Config{
		Host: host, Port: port, TLS: email.TLSImplicit, Username: "rfd", Password: "s3cret",
		From: "noreply@rfd.example", Timeout: 5 * time.Second, TLSConfig: cliTLS,
	}
	c, err := email.New(cfg, nil)
	require.NoError(t, err)

	msg := testMessage("d-auth")
	_, err = c.Send(context.Background(), msg)
	require.NoError(t, err)
	got := be.messages()
	require.Len(t, got, 1)
	assert.Equal(t, "rfd", got[0].AuthUser)
	assert.True(t, got[0].TLS)
	assertMIME(t, got[0].Data, msg)

	// Wrong password: 535 is a permanent failure (a config problem that
	// retrying the message cannot fix).
	cfg.Password = "wrong"
	c, err = email.New(cfg, nil)
	require.NoError(t, err)
	_, err = c.Send(context.Background(), msg)
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "error %v must be a *channels.Failure", err)
	assert.True(t, f.Permanent)
	assert.Equal(t, "535", f.Code)
}

func TestSendAuthPlainOverSTARTTLS(t *testing.T) {
	srvTLS, cliTLS := selfSigned(t)
	be := &backend{user: "rfd", pass: "s3cret"}
	host, port := startServer(t, be, serverOpts{starttls: srvTLS})
	c, err := email.New(email.Config{
		Host: host, Port: port, TLS: email.TLSStartTLS, Username: "rfd", Password: "s3cret",
		From: "noreply@rfd.example", Timeout: 5 * time.Second, TLSConfig: cliTLS,
	}, nil)
	require.NoError(t, err)
	// The second message reuses the encrypted, authenticated session.
	for _, id := range []string{"d-auth-starttls-1", "d-auth-starttls-2"} {
		_, err = c.Send(context.Background(), testMessage(id))
		require.NoError(t, err)
	}
	got := be.messages()
	require.Len(t, got, 2)
	for _, r := range got {
		assert.Equal(t, "rfd", r.AuthUser)
		assert.True(t, r.TLS)
	}
	opened, _ := be.counts()
	assert.Equal(t, 1, opened)
	require.NoError(t, c.Close())
}

func TestSendRejectedRecipientClassification(t *testing.T) {
	be := &backend{rejects: map[string]*smtp.SMTPError{
		"gone@clinic.example": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"},
		"busy@clinic.example": {Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"},
	}}
	host, port := startServer(t, be, serverOpts{})
	c, err := email.New(email.Config{Host: host, Port: port, TLS: email.TLSNone, From: "noreply@rfd.example", Timeout: 5 * time.Second}, nil)
	require.NoError(t, err)

	msg := testMessage("d-550")
	msg.To = "gone@clinic.example"
	_, err = c.Send(context.Background(), msg)
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "error %v must be a *channels.Failure", err)
	assert.True(t, f.Permanent)
	assert.Equal(t, "550", f.Code)
	assert.True(t, channels.IsPermanent(err))

	msg = testMessage("d-451")
	msg.To = "busy@clinic.example"
	_, err = c.Send(context.Background(), msg)
	f, ok = channels.AsFailure(err)
	require.True(t, ok, "error %v must be a *channels.Failure", err)
	assert.False(t, f.Permanent)
	assert.Equal(t, "451", f.Code)
	assert.Empty(t, be.messages())

	// A refused recipient fails the message, not the session: after RSET
	// the same session carries the next message.
	_, err = c.Send(context.Background(), testMessage("d-after-rejects"))
	require.NoError(t, err)
	assertMessageIDs(t, be, "d-after-rejects")
	opened, _ := be.counts()
	assert.Equal(t, 1, opened, "one session for all three messages")
}

func TestSendConnectionRefusedIsTransient(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	c, err := email.New(email.Config{Host: "127.0.0.1", Port: port, TLS: email.TLSNone, From: "noreply@rfd.example", Timeout: 2 * time.Second}, nil)
	require.NoError(t, err)
	_, err = c.Send(context.Background(), testMessage("d-refused"))
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "error %v must be a *channels.Failure", err)
	assert.False(t, f.Permanent)
	assert.Equal(t, "network", f.Code)
}

func TestSendHonoursContextCancellation(t *testing.T) {
	be := &backend{dataHold: make(chan struct{})}
	defer close(be.dataHold)
	host, port := startServer(t, be, serverOpts{})
	c, err := email.New(email.Config{Host: host, Port: port, TLS: email.TLSNone, From: "noreply@rfd.example", Timeout: 30 * time.Second}, nil)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Send(ctx, testMessage("d-slow"))
	assert.Less(t, time.Since(start), 5*time.Second, "Send must not wait for the 30s session timeout")
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "error %v must be a *channels.Failure", err)
	assert.False(t, f.Permanent)
	assert.Equal(t, "timeout", f.Code)
}

// A connection lost right after DATA's 250 must not fail the send: the
// message was accepted, and reporting a failure would have the delivery
// retried and the doctor e-mailed twice. The dead session is not used
// again: the next message finds it closed at MAIL, before anything of it
// was sent, and goes out once on a new session.
func TestSendAcceptedMessageSurvivesALostConnection(t *testing.T) {
	be := &backend{dropAfterAccept: true}
	host, port := startServer(t, be, serverOpts{})
	c := newPlainClient(t, host, port, email.Config{})

	out, err := c.Send(context.Background(), testMessage("d-lost-1"))
	require.NoError(t, err, "the message was accepted before the connection was lost")
	assert.Equal(t, "<d-lost-1@rfd-notify>", out.ProviderMessageID)

	_, err = c.Send(context.Background(), testMessage("d-lost-2"))
	require.NoError(t, err)
	assertMessageIDs(t, be, "d-lost-1", "d-lost-2")
	opened, _ := be.counts()
	assert.Equal(t, 2, opened, "the second message needs a new session")
}

// newPlainClient is a client without TLS of the server at host:port; cfg
// may set the pool's options.
func newPlainClient(t *testing.T, host string, port int, cfg email.Config) *email.Client {
	t.Helper()
	cfg.Host, cfg.Port, cfg.TLS, cfg.From, cfg.Timeout = host, port, email.TLSNone, "noreply@rfd.example", 5*time.Second
	c, err := email.New(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// assertMessageIDs checks that the server received exactly the messages of
// these delivery ids, each once, in any order.
func assertMessageIDs(t *testing.T, be *backend, ids ...string) {
	t.Helper()
	var want, got []string
	for _, id := range ids {
		want = append(want, "<"+id+"@rfd-notify>")
	}
	for _, r := range be.messages() {
		m, err := mail.ReadMessage(bytes.NewReader(r.Data))
		require.NoError(t, err)
		got = append(got, m.Header.Get("Message-ID"))
	}
	assert.ElementsMatch(t, want, got)
}

func TestSendReusesTheSession(t *testing.T) {
	be := &backend{}
	host, port := startServer(t, be, serverOpts{})
	c := newPlainClient(t, host, port, email.Config{})

	ids := []string{"d-seq-1", "d-seq-2", "d-seq-3", "d-seq-4", "d-seq-5"}
	for _, id := range ids {
		_, err := c.Send(context.Background(), testMessage(id))
		require.NoError(t, err)
	}
	assertMessageIDs(t, be, ids...)
	opened, open := be.counts()
	assert.Equal(t, 1, opened, "one session carries every message")
	assert.Equal(t, 1, open, "the session stays open for the next message")

	// Close ends it with QUIT; the server sees the session end.
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool { _, open := be.counts(); return open == 0 }, 5*time.Second, 10*time.Millisecond)

	// A send after Close still works, on a session of its own that is
	// not kept.
	_, err := c.Send(context.Background(), testMessage("d-seq-after-close"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, open := be.counts(); return open == 0 }, 5*time.Second, 10*time.Millisecond)
	opened, _ = be.counts()
	assert.Equal(t, 2, opened)
	assertMessageIDs(t, be, append(ids, "d-seq-after-close")...)
}

func TestSendConcurrentUsesAtMostMaxConnections(t *testing.T) {
	const maxConns, n = 3, 20
	be := &backend{dataHold: make(chan struct{})}
	host, port := startServer(t, be, serverOpts{})
	c := newPlainClient(t, host, port, email.Config{MaxConnections: maxConns})

	var wg sync.WaitGroup
	errs := make([]error, n)
	ids := make([]string, n)
	for i := range n {
		ids[i] = "d-par-" + strconv.Itoa(i)
		wg.Go(func() { _, errs[i] = c.Send(context.Background(), testMessage(ids[i])) })
	}
	// Every session is held in DATA until maxConns of them are: the sends
	// then really compete for connections.
	require.Eventually(t, func() bool {
		be.mu.Lock()
		defer be.mu.Unlock()
		return be.inData == maxConns
	}, 5*time.Second, 10*time.Millisecond)
	close(be.dataHold)
	wg.Wait()

	for i, err := range errs {
		require.NoError(t, err, ids[i])
	}
	assertMessageIDs(t, be, ids...)
	be.mu.Lock()
	defer be.mu.Unlock()
	assert.Equal(t, maxConns, len(be.conns), "connections opened")
	assert.Equal(t, maxConns, be.maxOpen, "sessions open at once")
	assert.Equal(t, n, be.dataCalls, "one DATA per message")
}

// A message refused after DATA fails permanently with the server's code;
// the session carries the next message.
func TestSendRejectedMessageKeepsTheSession(t *testing.T) {
	be := &backend{dataReject: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected"}}
	host, port := startServer(t, be, serverOpts{})
	c := newPlainClient(t, host, port, email.Config{})

	_, err := c.Send(context.Background(), testMessage("d-554"))
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "error %v must be a *channels.Failure", err)
	assert.True(t, f.Permanent)
	assert.Equal(t, "554", f.Code)

	be.set(func(b *backend) { b.dataReject = nil })
	_, err = c.Send(context.Background(), testMessage("d-after-554"))
	require.NoError(t, err)
	assertMessageIDs(t, be, "d-after-554")
	opened, _ := be.counts()
	assert.Equal(t, 1, opened)
}

// A send that finds every connection busy waits for one, as long as its
// context allows, and then fails as transient without opening another.
func TestSendWaitsForAFreeConnection(t *testing.T) {
	be := &backend{dataHold: make(chan struct{})}
	host, port := startServer(t, be, serverOpts{})
	c := newPlainClient(t, host, port, email.Config{MaxConnections: 1})

	first := make(chan error, 1)
	go func() { _, err := c.Send(context.Background(), testMessage("d-busy-1")); first <- err }()
	require.Eventually(t, func() bool { be.mu.Lock(); defer be.mu.Unlock(); return be.inData == 1 }, 5*time.Second, 10*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Send(ctx, testMessage("d-busy-2"))
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "error %v must be a *channels.Failure", err)
	assert.False(t, f.Permanent)
	assert.Equal(t, "timeout", f.Code)

	close(be.dataHold)
	require.NoError(t, <-first)
	assertMessageIDs(t, be, "d-busy-1")
	opened, _ := be.counts()
	assert.Equal(t, 1, opened)
}

// A session the server closed with 421 at MAIL (its idle timeout) is
// replaced, and the message goes out once, on the new session.
func TestSendReplacesASessionClosedWith421(t *testing.T) {
	be := &backend{mail421OnReuse: true}
	host, port := startServer(t, be, serverOpts{})
	c := newPlainClient(t, host, port, email.Config{})

	for _, id := range []string{"d-421-1", "d-421-2", "d-421-3"} {
		_, err := c.Send(context.Background(), testMessage(id))
		require.NoError(t, err, id)
	}
	assertMessageIDs(t, be, "d-421-1", "d-421-2", "d-421-3")
	opened, _ := be.counts()
	assert.Equal(t, 3, opened, "each reuse met 421 and took a new session")
	// The client closed the sessions that said 421.
	require.Eventually(t, func() bool { _, open := be.counts(); return open == 1 }, 5*time.Second, 10*time.Millisecond)
}

// Only an idle session is replaced: a 421 on a session just opened is the
// server's answer to this message, a transient failure as before.
func TestSend421OnANewSessionIsTransient(t *testing.T) {
	be := &backend{mail421: true}
	host, port := startServer(t, be, serverOpts{})
	c := newPlainClient(t, host, port, email.Config{})

	_, err := c.Send(context.Background(), testMessage("d-421-new"))
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "error %v must be a *channels.Failure", err)
	assert.False(t, f.Permanent)
	assert.Equal(t, "421", f.Code)
	opened, _ := be.counts()
	assert.Equal(t, 1, opened, "no second session")
	assert.Empty(t, be.messages())
	// 421 closes the channel: the client does not keep the session.
	require.Eventually(t, func() bool { _, open := be.counts(); return open == 0 }, 5*time.Second, 10*time.Millisecond)
}

// A connection lost after the message went out in DATA is never retried on
// another session, even an idle one: the server may have taken it.
func TestSendLostDataReplyIsNotResent(t *testing.T) {
	be := &backend{}
	host, port := startServer(t, be, serverOpts{})
	c := newPlainClient(t, host, port, email.Config{})

	_, err := c.Send(context.Background(), testMessage("d-data-1"))
	require.NoError(t, err)
	be.set(func(b *backend) { b.dropInData = true })
	_, err = c.Send(context.Background(), testMessage("d-data-2"))
	f, ok := channels.AsFailure(err)
	require.True(t, ok, "error %v must be a *channels.Failure", err)
	assert.False(t, f.Permanent)
	assert.Equal(t, "network", f.Code)

	be.mu.Lock()
	defer be.mu.Unlock()
	assert.Equal(t, 2, be.dataCalls, "the second message went out once")
	assert.Equal(t, 1, len(be.conns), "no second session")
}

func TestSendClosesIdleSessions(t *testing.T) {
	be := &backend{}
	host, port := startServer(t, be, serverOpts{})
	c := newPlainClient(t, host, port, email.Config{IdleTimeout: 50 * time.Millisecond})

	_, err := c.Send(context.Background(), testMessage("d-idle-1"))
	require.NoError(t, err)
	// The idle session is closed without any further send.
	require.Eventually(t, func() bool { _, open := be.counts(); return open == 0 }, 5*time.Second, 10*time.Millisecond)

	_, err = c.Send(context.Background(), testMessage("d-idle-2"))
	require.NoError(t, err)
	opened, _ := be.counts()
	assert.Equal(t, 2, opened, "the next message opens a new session")
	assertMessageIDs(t, be, "d-idle-1", "d-idle-2")
}

func TestSendInvalidMessageIsPermanent(t *testing.T) {
	c, err := email.New(email.Config{Host: "127.0.0.1", Port: 1, TLS: email.TLSNone, From: "noreply@rfd.example"}, nil)
	require.NoError(t, err)
	for name, m := range map[string]email.Message{
		"header injection in id": {To: "a@b.example", Text: "x", DeliveryID: "x>\r\nBcc: evil@example.com"},
		"empty id":               {To: "a@b.example", Text: "x"},
		"bad recipient":          {To: "not an address", Text: "x", DeliveryID: "d1"},
		"no text":                {To: "a@b.example", DeliveryID: "d1"},
	} {
		_, err := c.Send(context.Background(), m)
		f, ok := channels.AsFailure(err)
		require.True(t, ok, name)
		assert.True(t, f.Permanent, name)
		assert.Equal(t, "invalid_message", f.Code, name)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	_, err := email.New(email.Config{From: "a@b.example"}, nil)
	assert.Error(t, err, "host required")
	_, err = email.New(email.Config{Host: "smtp.example"}, nil)
	assert.Error(t, err, "from required")
	_, err = email.New(email.Config{Host: "smtp.example", From: "a@b.example", TLS: "ssl"}, nil)
	assert.Error(t, err, "unknown TLS mode")
	_, err = email.New(email.Config{Host: "smtp.example", From: "a@b.example", TLS: email.TLSNone, Username: "u"}, nil)
	assert.Error(t, err, "credentials in clear text")
}

// BenchmarkSendSessionReuse sends e-mails one after the other over
// STARTTLS with AUTH PLAIN to the local go-smtp server, first on a closed
// client, which opens and quits a session per message as the client did
// before it kept them, then on an open one reusing its session. It prints
// both times per message and their ratio.
func BenchmarkSendSessionReuse(b *testing.B) {
	const perMode = 200
	srvTLS, cliTLS := selfSigned(b)
	be := &backend{user: "rfd", pass: "s3cret"}
	host, port := startServer(b, be, serverOpts{starttls: srvTLS})
	cfg := email.Config{Host: host, Port: port, TLS: email.TLSStartTLS, Username: "rfd", Password: "s3cret",
		From: "noreply@rfd.example", Timeout: 5 * time.Second, TLSConfig: cliTLS}
	perMessage := func(c *email.Client, prefix string) time.Duration {
		start := time.Now()
		for i := range perMode {
			if _, err := c.Send(context.Background(), testMessage(prefix+strconv.Itoa(i))); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start) / perMode
	}
	var fresh, reused time.Duration
	for n := 0; b.Loop(); n++ {
		perSend, err := email.New(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		_ = perSend.Close()
		pooled, err := email.New(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		fresh += perMessage(perSend, "d-bench-new-"+strconv.Itoa(n)+"-")
		reused += perMessage(pooled, "d-bench-reused-"+strconv.Itoa(n)+"-")
		_ = pooled.Close()
	}
	b.ReportMetric(float64(fresh.Microseconds())/float64(b.N), "µs/msg-new-session")
	b.ReportMetric(float64(reused.Microseconds())/float64(b.N), "µs/msg-reused-session")
	b.ReportMetric(float64(fresh)/float64(reused), "x-faster")
	b.Logf("per message: new session %s, reused session %s: %.1fx", fresh/time.Duration(b.N), reused/time.Duration(b.N), float64(fresh)/float64(reused))
}
