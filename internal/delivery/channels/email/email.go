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
	"strconv"
	"sync"
	"time"

	mail "github.com/wneessen/go-mail"

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

// Config configures the SMTP client.
type Config struct {
	Host     string
	Port     int    // 0: 25 for "none", 587 for "starttls", 465 for "tls"
	Username string // AUTH is used only when set
	Password string
	TLS      string // TLSNone, TLSStartTLS or TLSImplicit; "" means TLSStartTLS
	From     string
	HeloName string        // "" lets go-mail use the local host name
	Timeout  time.Duration // whole SMTP session; 0 means 30s

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

// Client sends e-mails. It is safe for concurrent use: every Send opens its
// own SMTP session.
type Client struct {
	cfg    Config
	tls    *tls.Config
	dialer Dialer
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
	return &Client{cfg: cfg, tls: tlsCfg, dialer: dialer}, nil
}

func isLocalhost(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// Send delivers msg in one SMTP session. The returned error is always a
// *channels.Failure: SMTP 5xx replies are permanent, 4xx replies and
// connection problems are transient.
func (c *Client) Send(ctx context.Context, msg Message) (channels.Outcome, error) {
	m, err := c.build(msg)
	if err != nil {
		return channels.Outcome{}, channels.Permanent("invalid_message", fmt.Errorf("email: build message: %w", err))
	}

	// go-mail only bounds the session by its timeout and only uses the
	// context for dialing; closing the connection when ctx ends makes a
	// cancelled Send return promptly. Closing it ourselves afterwards also
	// covers go-mail's early returns (e.g. a failed EHLO) that do not close.
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := c.dial(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		conns = append(conns, conn)
		mu.Unlock()
		return conn, nil
	}
	closeAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range conns {
			_ = conn.Close() // may already be closed by QUIT: harmless
		}
	}
	defer closeAll()
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()

	client, err := mail.NewClient(c.cfg.Host, c.options(dial)...)
	if err != nil {
		return channels.Outcome{}, channels.Permanent("config", fmt.Errorf("email: new client: %w", err))
	}
	smtpClient, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return channels.Outcome{}, classify(ctx, fmt.Errorf("email: connect: %w", err))
	}
	err = client.SendWithSMTPClient(smtpClient, m)
	// The message is delivered once DATA got its 250 (go-mail then marks it
	// delivered): neither the RSET go-mail sends after it nor the QUIT may
	// fail the send, or the retry would e-mail the doctor twice.
	_ = client.CloseWithSMTPClient(smtpClient)
	if err != nil && !m.IsDelivered() {
		return channels.Outcome{}, classify(ctx, fmt.Errorf("email: send: %w", err))
	}
	return channels.Outcome{ProviderMessageID: m.GetMessageID(), Provider: Provider}, nil
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
