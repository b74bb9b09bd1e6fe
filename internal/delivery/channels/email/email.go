// Package email sends notification e-mails over SMTP with
// github.com/wneessen/go-mail.
package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"sync"
	"time"

	mail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/rfd-notify/rfd/internal/delivery/channels"
)

// Provider is the Outcome.Provider value of this package.
const Provider = "smtp"

// TLS modes of Config.TLS.
const (
	TLSNone     = "none"     // plain SMTP; only sensible on a trusted local relay
	TLSStartTLS = "starttls" // STARTTLS is mandatory: no silent downgrade to plain text
	TLSImplicit = "tls"      // implicit TLS ("SMTPS", usually port 465)
)

// Defaults of Config.
const (
	DefaultMaxConnections = 10
	// DefaultIdleTimeout is well below the 5 minutes RFC 5321 §4.5.3.2.7
	// asks servers to wait for the next command, and below the shorter
	// limits relays actually set, so an idle session is rarely found dead.
	DefaultIdleTimeout = 30 * time.Second
	// quitTimeout bounds the QUIT that closes a session politely.
	quitTimeout = 5 * time.Second
)

// Config configures the SMTP client.
type Config struct {
	Host     string
	Port     int    // 0: 25 for "none", 587 for "starttls", 465 for "tls"
	Username string // AUTH is used only when set
	Password string
	TLS      string // TLSNone, TLSStartTLS or TLSImplicit; "" means TLSStartTLS
	From     string
	HeloName string // "" lets go-mail use the local host name
	// Timeout bounds opening a session (dial, EHLO, STARTTLS, AUTH) and,
	// separately, each message's transaction. 0 means 30s.
	Timeout time.Duration

	// MaxConnections bounds the SMTP sessions open at once, idle ones
	// included; a Send waits for a free one. 0 means DefaultMaxConnections.
	MaxConnections int
	// IdleTimeout is how long an unused session is kept for the next
	// message before it is closed. 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration

	// TLSConfig overrides the TLS settings (e.g. a private CA). Its
	// ServerName defaults to Host. nil means the system roots.
	TLSConfig *tls.Config
}

// Dialer opens the TCP connection to the server; *net.Dialer implements it.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Message is one e-mail. Text is required; HTML, when set, is sent as the
// preferred alternative of a multipart/alternative body.
type Message struct {
	To         string
	Subject    string
	Text       string
	HTML       string
	DeliveryID string // becomes the Message-ID, so a retry carries the same id
}

// Client sends e-mails. It is safe for concurrent use. Opening an SMTP
// session costs several round trips (greeting, EHLO, STARTTLS with its TLS
// handshake and a second EHLO, AUTH), more than the message itself, so the
// Client keeps the sessions it opened and sends the next message over an
// idle one: after a message's 250 a new MAIL transaction may start on the
// same session (RFC 5321 §4.1.4). Close ends the idle sessions.
type Client struct {
	cfg    Config
	tls    *tls.Config
	dialer Dialer

	// slots holds one token per Send that has a session. Sessions are
	// only dialed when none is idle, so the sessions open (in use plus
	// idle) never exceed cap(slots).
	slots chan struct{}

	mu     sync.Mutex
	idle   []*session // least recently used first
	closed bool       // Close was called: sessions are no longer kept
}

// New validates cfg and returns a Client. A nil dialer means a plain
// *net.Dialer.
func New(cfg Config, dialer Dialer) (*Client, error) {
	if cfg.Host == "" {
		return nil, errors.New("email: config: Host is required")
	}
	if cfg.From == "" {
		return nil, errors.New("email: config: From is required")
	}
	if err := mail.NewMsg().From(cfg.From); err != nil {
		return nil, fmt.Errorf("email: config: From: %w", err)
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
	}
	if cfg.Port == 0 {
		switch cfg.TLS {
		case TLSNone:
			cfg.Port = mail.DefaultPort
		case TLSStartTLS:
			cfg.Port = mail.DefaultPortTLS
		case TLSImplicit:
			cfg.Port = mail.DefaultPortSSL
		}
	}
	switch cfg.TLS {
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return nil, fmt.Errorf("email: config: TLS must be %q, %q or %q, got %q", TLSNone, TLSStartTLS, TLSImplicit, cfg.TLS)
	}
	// Refuse at start-up rather than on every send: go-mail will not send
	// PLAIN/LOGIN credentials in clear text except to localhost.
	if cfg.Username != "" && cfg.TLS == TLSNone && !isLocalhost(cfg.Host) {
		return nil, errors.New("email: config: Username is set but TLS is \"none\": credentials would be sent in clear text")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxConnections < 0 {
		return nil, fmt.Errorf("email: config: MaxConnections must not be negative, got %d", cfg.MaxConnections)
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tlsCfg = cfg.TLSConfig.Clone()
	}
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = cfg.Host
	}
	if dialer == nil {
		dialer = &net.Dialer{}
	}
	return &Client{cfg: cfg, tls: tlsCfg, dialer: dialer, slots: make(chan struct{}, cfg.MaxConnections)}, nil
}

func isLocalhost(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// Send delivers msg over an idle session, or a new one when none is idle.
// The returned error is always a *channels.Failure: SMTP 5xx replies are
// permanent, 4xx replies and connection problems are transient.
func (c *Client) Send(ctx context.Context, msg Message) (channels.Outcome, error) {
	m, err := c.build(msg)
	if err != nil {
		return channels.Outcome{}, channels.Permanent("invalid_message", fmt.Errorf("email: build message: %w", err))
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return channels.Outcome{}, channels.FromTransportError(fmt.Errorf("email: wait for a connection: %w", ctx.Err()))
	}
	defer func() { <-c.slots }()

	s, reused := c.take(), true
	if s == nil {
		if s, err = c.connect(ctx); err != nil {
			return channels.Outcome{}, err
		}
		reused = false
	}
	keep, err := c.transact(ctx, s, m)
	if err != nil && reused && !m.IsDelivered() && staleSession(err) && ctx.Err() == nil {
		// The idle session had died (the server timed it out, restarted,
		// or said 421) before the server accepted DATA: nothing of the
		// message went out, so it is sent once more, on a new session.
		// Never after DATA: the server may have taken the message even
		// though its reply was lost.
		s.discard()
		if s, err = c.connect(ctx); err != nil {
			return channels.Outcome{}, err
		}
		keep, err = c.transact(ctx, s, m)
	}
	c.release(s, keep)
	// The message is delivered once DATA got its 250 (go-mail then marks
	// it delivered): nothing that happens to the session afterwards may
	// fail the send, or the retry would e-mail the doctor twice.
	if err != nil && !m.IsDelivered() {
		return channels.Outcome{}, classify(ctx, fmt.Errorf("email: send: %w", err))
	}
	return channels.Outcome{ProviderMessageID: m.GetMessageID(), Provider: Provider}, nil
}

// Close closes the idle sessions with QUIT; sessions in use are closed when
// their Send ends. Sends after Close still work, each on a session of its
// own. Close always returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range idle {
		s.timer.Stop()
		wg.Go(s.quit)
	}
	wg.Wait()
	return nil
}

// session is one SMTP session: its own go-mail client (whose options it
// was opened with) and connection.
type session struct {
	mc *mail.Client
	sc *smtp.Client

	mu   sync.Mutex
	conn net.Conn // as dialed: closing it ends the session at once
	dead bool     // the connection was closed (possibly before it was dialed)

	idleSince time.Time   // set by release, under Client.mu
	timer     *time.Timer // closes the session when idle too long
}

// dialFunc records the connection dialed for s, so that s.discard can
// close it from another goroutine.
func (s *session) dialFunc(c *Client) mail.DialContextFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := c.dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.dead {
			_ = conn.Close()
			return nil, net.ErrClosed
		}
		s.conn = conn
		return conn, nil
	}
}

// discard closes the connection without a word: for a session that
// failed, or whose context ended. It may run concurrently with a command
// on the session, which then fails.
func (s *session) discard() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = true
	if s.conn != nil {
		_ = s.conn.Close() // may already be closed by QUIT: harmless
	}
}

// quit closes a healthy session with QUIT, briefly: the server only learns
// that no more mail is coming.
func (s *session) quit() {
	if s.sc.UpdateDeadline(quitTimeout) == nil {
		_ = s.sc.Quit()
	}
	s.discard()
}

// connect opens a session: dial, EHLO, STARTTLS and AUTH as configured.
// Its error is a *channels.Failure.
func (c *Client) connect(ctx context.Context) (*session, error) {
	s := &session{}
	mc, err := mail.NewClient(c.cfg.Host, c.options(s.dialFunc(c))...)
	if err != nil {
		return nil, channels.Permanent("config", fmt.Errorf("email: new client: %w", err))
	}
	s.mc = mc
	// go-mail only bounds the session by its timeout and only uses the
	// context for dialing; closing the connection when ctx ends makes a
	// cancelled Send return promptly. Closing it ourselves on failure also
	// covers go-mail's early returns (e.g. a failed EHLO) that do not close.
	stop := context.AfterFunc(ctx, s.discard)
	s.sc, err = mc.DialToSMTPClientWithContext(ctx)
	if !stop() && err == nil {
		err = ctx.Err() // ctx ended just after: the connection is closed
	}
	if err != nil {
		s.discard()
		return nil, classify(ctx, fmt.Errorf("email: connect: %w", err))
	}
	return s, nil
}

// transact sends m over s as one mail transaction and says whether s may
// carry the next one.
func (c *Client) transact(ctx context.Context, s *session, m *mail.Msg) (keep bool, err error) {
	stop := context.AfterFunc(ctx, s.discard)
	err = s.mc.SendWithSMTPClient(s.sc, m)
	keep = err == nil
	if err != nil && !m.IsDelivered() {
		if code := replyCode(err); code >= 400 && code != 421 {
			// The server answered: the session is fine, only this
			// transaction failed. RSET clears what is left of it (go-mail
			// resets after a refused MAIL or RCPT, not after DATA).
			keep = s.sc.Reset() == nil
		}
	}
	if !stop() {
		keep = false // ctx ended: its AfterFunc closed the connection
	}
	return keep, err
}

// staleSession reports whether err says the session had died before the
// server accepted DATA: no reply at all (closed, reset, timed out) or 421,
// the server closing the channel, at the connection check, MAIL, RCPT or
// the DATA command itself.
func staleSession(err error) bool {
	var se *mail.SendError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Reason {
	case mail.ErrConnCheck, mail.ErrSMTPMailFrom, mail.ErrSMTPRcptTo, mail.ErrSMTPData:
		code := se.ErrorCode()
		return code == 0 || code == 421
	}
	return false
}

// take returns the most recently used idle session, or nil. The most recent
// is the one least likely to have been timed out by the server, and using
// it first lets the others expire when fewer sessions are enough.
func (c *Client) take() *session {
	c.mu.Lock()
	var expired []*session
	var s *session
	for len(c.idle) > 0 {
		last := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		last.timer.Stop()
		if time.Since(last.idleSince) < c.cfg.IdleTimeout {
			s = last
			break
		}
		expired = append(expired, last) // its timer is late: close it here
	}
	c.mu.Unlock()
	for _, e := range expired {
		e.quit()
	}
	return s
}

// release keeps s for the next message when keep says it is healthy, and
// closes it otherwise.
func (c *Client) release(s *session, keep bool) {
	if !keep {
		s.discard()
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.quit()
		return
	}
	s.idleSince = time.Now()
	s.timer = time.AfterFunc(c.cfg.IdleTimeout, func() { c.expire(s) })
	c.idle = append(c.idle, s)
	c.mu.Unlock()
}

// expire closes s if it is still idle and has been for IdleTimeout. A
// timer that fired while s was taken finds it gone, or back in the list
// with a later idleSince and a timer of its own.
func (c *Client) expire(s *session) {
	c.mu.Lock()
	i := slices.Index(c.idle, s)
	if i < 0 || time.Since(s.idleSince) < c.cfg.IdleTimeout {
		c.mu.Unlock()
		return
	}
	c.idle = slices.Delete(c.idle, i, i+1)
	c.mu.Unlock()
	s.quit()
}

// dial opens the TCP connection and, in implicit-TLS mode, does the TLS
// handshake itself: go-mail skips its own TLS wrapping when a custom dial
// function is set. Returning a *tls.Conn is what tells go-mail's SMTP client
// that the session is encrypted (needed before it will send AUTH PLAIN).
func (c *Client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if c.cfg.TLS != TLSImplicit {
		return conn, nil
	}
	tc := tls.Client(conn, c.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return tc, nil
}

func (c *Client) options(dial mail.DialContextFunc) []mail.Option {
	opts := []mail.Option{
		mail.WithTimeout(c.cfg.Timeout),
		mail.WithDialContextFunc(dial),
		mail.WithTLSConfig(c.tls),
		// A session is reused as long as it answers; one found dead before
		// DATA is replaced (see Send), so neither a NOOP before each
		// message nor an RSET after each accepted one is worth its round
		// trip.
		mail.WithoutNoop(),
		mail.WithoutRset(),
	}
	switch c.cfg.TLS {
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	case TLSStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case TLSImplicit:
		// WithSSL makes go-mail skip STARTTLS; the TLS handshake is in dial.
		opts = append(opts, mail.WithSSL(), mail.WithTLSPolicy(mail.NoTLS))
	}
	if c.cfg.HeloName != "" {
		opts = append(opts, mail.WithHELO(c.cfg.HeloName))
	}
	if c.cfg.Username != "" {
		// PLAIN is what nearly every relay offers; LOGIN covers the rest.
		// Both refuse to run over an unencrypted non-local connection.
		opts = append(opts,
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthPlain, mail.SMTPAuthLogin),
			mail.WithUsername(c.cfg.Username),
			mail.WithPassword(c.cfg.Password),
		)
	}
	// Port last: WithSSL must not override it.
	return append(opts, mail.WithPort(c.cfg.Port))
}

func (c *Client) build(msg Message) (*mail.Msg, error) {
	if !validMessageIDLeft(msg.DeliveryID) {
		return nil, fmt.Errorf("delivery id %q cannot be used as a Message-ID", msg.DeliveryID)
	}
	if msg.Text == "" {
		return nil, errors.New("text body is required")
	}
	m := mail.NewMsg()
	if err := m.From(c.cfg.From); err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	if err := m.To(msg.To); err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	m.Subject(msg.Subject)
	// Derived from the delivery id, so a retried send has the same
	// Message-ID and receiving systems can de-duplicate it.
	m.SetMessageIDWithValue(MessageIDFor(msg.DeliveryID))
	m.SetDate()
	// text/plain first, text/html last: in multipart/alternative the last
	// part is the preferred one.
	m.SetBodyString(mail.TypeTextPlain, msg.Text)
	if msg.HTML != "" {
		m.AddAlternativeString(mail.TypeTextHTML, msg.HTML)
	}
	return m, nil
}

// MessageIDFor returns the Message-ID (without angle brackets) used for a
// delivery id.
func MessageIDFor(deliveryID string) string { return deliveryID + "@rfd-notify" }

// validMessageIDLeft accepts ids made of RFC 5322 atext characters that are
// safe in a header (letters, digits, '-', '_', '.', not at the ends); UUIDs
// and ULIDs qualify.
func validMessageIDLeft(id string) bool {
	if id == "" || len(id) > 200 || id[0] == '.' || id[len(id)-1] == '.' {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

// classify maps an SMTP error to a Failure. The reply code decides: 5xx is
// permanent (unknown mailbox, policy rejection, failed AUTH: retrying the
// same message cannot help), 4xx is transient (greylisting, mailbox busy,
// rate limits). Errors without a reply code (dial, TLS, reset, timeout) are
// transient.
func classify(ctx context.Context, err error) *channels.Failure {
	if ctx.Err() != nil {
		// We closed the connection because ctx ended: report that cause
		// rather than the "use of closed network connection" it produced.
		err = errors.Join(ctx.Err(), err)
	}
	if code := replyCode(err); code >= 400 {
		if code >= 500 {
			return channels.Permanent(strconv.Itoa(code), err)
		}
		return channels.Transient(strconv.Itoa(code), 0, err)
	}
	return channels.FromTransportError(err)
}

// replyCode finds the SMTP reply code in err's chain, or 0.
func replyCode(err error) int {
	// Errors during MAIL/RCPT/DATA come as *mail.SendError (possibly several
	// joined); errors during EHLO/STARTTLS/AUTH as *textproto.Error.
	var se *mail.SendError
	if errors.As(err, &se) && se.ErrorCode() != 0 {
		return se.ErrorCode()
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}
