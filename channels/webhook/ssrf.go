package webhook

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"
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

// ValidateURL accepts absolute https URLs with a host; plain http is
// accepted only with allowLoopback (test mode). The address itself is judged
// later, at connect time, because only then is it resolved.
func ValidateURL(raw string, allowLoopback bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("webhook: invalid URL: %w", err)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowLoopback:
	default:
		return nil, fmt.Errorf("webhook: URL scheme %q not allowed, use https", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("webhook: URL %q has no host", u.Redacted())
	}
	return u, nil
}
