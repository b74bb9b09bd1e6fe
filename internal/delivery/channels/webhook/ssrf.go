package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BlockedAddressError is returned (wrapped) when the SSRF guard refuses to
// connect to an address. It is raised by the dialer's Control hook, i.e.
// after DNS resolution and before connect(2): no packet leaves the host, and
// a name that resolves (or is re-bound) to a private address is caught too.
type BlockedAddressError struct {
	Addr netip.Addr
}

func (e *BlockedAddressError) Error() string {
	return fmt.Sprintf("webhook: connection to %s refused: not a public address", e.Addr)
}

// Non-public ranges that netip's predicates do not cover. Together with
// IsLoopback, IsPrivate (10/8, 172.16/12, 192.168/16, fc00::/7),
// IsLinkLocalUnicast (169.254/16 incl. cloud metadata, fe80::/10),
// IsMulticast and IsUnspecified they form the deny list.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // CGNAT shared address space
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, incl. 255.255.255.255
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("100::/64"),       // discard-only
}

// nat64 is the well-known NAT64 prefix: its last 32 bits are an IPv4
// address, which is what the guard must judge.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// CheckAddr reports whether the guard allows a connection to addr. With
// allowLoopback, loopback addresses (and only those) are also allowed: the
// test mode used against httptest servers.
func CheckAddr(addr netip.Addr, allowLoopback bool) error {
	addr = addr.Unmap()
	if nat64.Contains(addr) {
		b := addr.As16()
		addr = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	if !addr.IsValid() {
		return &BlockedAddressError{Addr: addr}
	}
	if addr.IsLoopback() {
		if allowLoopback {
			return nil
		}
		return &BlockedAddressError{Addr: addr}
	}
	if addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified() {
		return &BlockedAddressError{Addr: addr}
	}
	for _, p := range blockedPrefixes {
		if p.Contains(addr) {
			return &BlockedAddressError{Addr: addr}
		}
	}
	return nil
}

// GuardDialer returns a copy of base (nil: a zero net.Dialer) whose Control
// hook runs CheckAddr on every address the dialer is about to connect to.
// A Control/ControlContext already on base still runs after the check.
func GuardDialer(base *net.Dialer, allowLoopback bool) *net.Dialer {
	d := &net.Dialer{}
	if base != nil {
		*d = *base
	}
	prevCtl, prevCtx := d.Control, d.ControlContext
	d.Control = nil
	d.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			// Fail closed: Control always gets a resolved "ip:port".
			return fmt.Errorf("webhook: unexpected dial address %q: %w", address, err)
		}
		if err := CheckAddr(ap.Addr(), allowLoopback); err != nil {
			return err
		}
		if prevCtx != nil {
			return prevCtx(ctx, network, address, c)
		}
		if prevCtl != nil {
			return prevCtl(network, address, c)
		}
		return nil
	}
	return d
}

// InvalidURLError is a webhook URL refused before any address is looked
// at. Reason is safe to show the integrator: it never quotes the URL, whose
// path or query may carry the integrator's own tokens.
type InvalidURLError struct {
	Reason string
	Err    error
}

func (e *InvalidURLError) Error() string {
	if e.Err != nil {
		return "webhook: URL not allowed: " + e.Reason + ": " + e.Err.Error()
	}
	return "webhook: URL not allowed: " + e.Reason
}

func (e *InvalidURLError) Unwrap() error { return e.Err }

// ValidateURL accepts absolute https URLs with a host; plain http is
// accepted only with allowLoopback (test mode). It refuses user information
// (https://user@host/): credentials do not belong in a URL that is listed
// and logged, and "trusted.example@other" is a classic way to disguise the
// real host. It refuses hosts that end in a number but are not a canonical
// IP address (2130706433, 0x7f.1, 0177.0.0.1, 127.1): resolvers disagree on
// what they mean, and no public DNS name ends in a numeric label. The
// address itself is judged by CheckAddr: at registration on the literal or
// resolved address (CheckDestination), at delivery on every address the
// dialer connects to (GuardDialer).
func ValidateURL(raw string, allowLoopback bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, &InvalidURLError{Reason: "not a valid URL", Err: err}
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowLoopback:
	default:
		return nil, &InvalidURLError{Reason: "the scheme must be https"}
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, &InvalidURLError{Reason: "the URL must name a host (https://host/path)"}
	}
	if u.User != nil {
		return nil, &InvalidURLError{Reason: "the URL must not carry user information (user@host)"}
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, &InvalidURLError{Reason: "the port must be between 1 and 65535"}
		}
	}
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err != nil && endsInNumber(host) {
		return nil, &InvalidURLError{Reason: "the host must be a DNS name or a canonical IP address"}
	}
	return u, nil
}

// endsInNumber reports whether host's last label is a number (decimal, or
// hexadecimal with 0x), the WHATWG URL test for "this host is an IPv4
// address in some form".
func endsInNumber(host string) bool {
	host = strings.TrimSuffix(host, ".")
	label := host[strings.LastIndexByte(host, '.')+1:]
	if label == "" {
		return false
	}
	digits := "0123456789"
	if len(label) >= 2 && (label[:2] == "0x" || label[:2] == "0X") {
		label, digits = label[2:], "0123456789abcdefABCDEF"
	}
	for _, c := range label {
		if !strings.ContainsRune(digits, c) {
			return false
		}
	}
	return true
}

// Resolver looks up the addresses of a host name; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ResolveTimeout bounds CheckDestination's look-up: registration answers
// promptly even when DNS does not.
const ResolveTimeout = 3 * time.Second

// ErrNoSuchHost is a host name the resolver says does not exist (or has no
// address): nothing could ever be delivered to it.
var ErrNoSuchHost = errors.New("webhook: the host name does not resolve")

// CheckDestination is the policy of the delivery path applied at
// registration, so that an endpoint is refused when it is registered rather
// than at every delivery: ValidateURL, then CheckAddr on the host's
// address: the literal one, or every address r resolves the name to
// (one refused address refuses the URL, since delivery may connect to any
// of them).
//
// A name that does not exist is refused (ErrNoSuchHost). A resolver that
// does not answer (timeout, server failure) refuses nothing: resolved is
// false, the URL is accepted, and the delivery guard, which judges every
// address it connects to, stays the backstop; it is also what catches a
// name re-pointed after registration.
func CheckDestination(ctx context.Context, raw string, allowLoopback bool, r Resolver) (u *url.URL, resolved bool, err error) {
	u, err = ValidateURL(raw, allowLoopback)
	if err != nil {
		return nil, false, err
	}
	host := u.Hostname()
	if addr, err := netip.ParseAddr(host); err == nil {
		if err := CheckAddr(addr, allowLoopback); err != nil {
			return nil, false, err
		}
		return u, true, nil
	}
	if name := strings.ToLower(strings.TrimSuffix(host, ".")); name == "localhost" || strings.HasSuffix(name, ".localhost") {
		// RFC 6761: always loopback, whatever a resolver would say.
		if err := CheckAddr(netip.IPv6Loopback(), allowLoopback); err != nil {
			return nil, false, err
		}
		return u, true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, ResolveTimeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return nil, false, ErrNoSuchHost
	case err != nil:
		return u, false, nil
	case len(addrs) == 0:
		return nil, false, ErrNoSuchHost
	}
	for _, a := range addrs {
		if err := CheckAddr(a, allowLoopback); err != nil {
			return nil, false, err
		}
	}
	return u, true, nil
}
