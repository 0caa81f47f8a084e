package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link describes a host's or NAT's link to the internet. Zero is a link
// with no added delay and no rate limit.
type Link struct {
	// Delay is the one-way delay added in each direction, so a link adds
	// 2×Delay to every round trip across it; the RTT between two boxes is
	// 2×(Delay₁ + Delay₂).
	Delay time.Duration
	// Rate is the link's rate in each direction, in bits per second
	// (token bucket, TBF); 0 is unshaped.
	Rate int64
}

// Host is a namespace where a test runs a server, a peer or a browser.
type Host struct {
	Name string
	NS   *NS
	// Addr is the host's own IPv4 address: public, or on its NAT's LAN.
	Addr netip.Addr
	// Public is the address the internet sees: Addr, or its NAT's.
	Public netip.Addr
	// NAT is the NAT the host sits behind, or nil.
	NAT *NAT
}

// NAT is a home router: a namespace between a LAN of hosts and the
// internet, translating with the behaviour of its Kind.
type NAT struct {
	Name   string
	Kind   NATKind
	NS     *NS
	Public netip.Addr   // the NAT's address on the internet
	LAN    netip.Prefix // its LAN; the NAT is .1, hosts .2 up

	lab   *Lab
	hosts int
}

// Lab is a set of network namespaces that stand for an internet: a router
// namespace ("internet") holding one link per attached box, each box a
// public host or a NAT with hosts behind it. Every link's delay is applied
// by a user-space delay line in the router, its rate by TBF on both ends.
// Public links get 198.18.N.0/24 (RFC 2544 benchmarking space; router .1,
// box .2); the LAN of the N-th NAT is 192.168.N.0/24. IPv6 is off.
// Close removes everything.
type Lab struct {
	internet *NS
	delay    *delayLine

	mu     sync.Mutex
	nss    []*NS
	names  map[string]bool
	links  int
	closed bool
}

// Check reports whether this machine can run a lab, with an error that
// wraps ErrUnsupported saying why not.
func Check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root: %w", ErrUnsupported)
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("no /dev/net/tun: %w", ErrUnsupported)
	}
	ns, err := newNS("check")
	if err != nil {
		return err
	}
	defer ns.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "check0"}, PeerName: "check1"}
	if err := ns.handle.LinkAdd(veth); err != nil {
		return fmt.Errorf("no veth: %v: %w", err, ErrUnsupported)
	}
	return nil
}

// New creates an empty lab: the internet namespace and its delay line.
func New() (*Lab, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	inet, err := newNS("internet")
	if err != nil {
		return nil, err
	}
	l := &Lab{internet: inet, nss: []*NS{inet}, names: map[string]bool{"internet": true}}
	if err := l.setupInternet(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Lab) setupInternet() error {
	ns := l.internet
	for _, kv := range [][2]string{
		{"net/ipv4/ip_forward", "1"},
		{"net/ipv4/conf/all/rp_filter", "0"},
		{"net/ipv4/conf/default/rp_filter", "0"},
		{"net/ipv6/conf/all/disable_ipv6", "1"},
		{"net/ipv6/conf/default/disable_ipv6", "1"},
	} {
		if err := ns.sysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	d, err := newDelayLine(ns)
	if err != nil {
		return err
	}
	l.delay = d
	h := ns.handle
	tun, err := h.LinkByName(delayTUN)
	if err != nil {
		return fmt.Errorf("delay line device: %w", err)
	}
	if err := h.LinkSetMTU(tun, 1500); err != nil {
		return err
	}
	if err := h.LinkSetUp(tun); err != nil {
		return err
	}
	// Table 100 sends everything to the delay line; packets coming back
	// from it use the main table.
	const delayTable = 100
	_, all, _ := net.ParseCIDR("0.0.0.0/0")
	if err := h.RouteAdd(&netlink.Route{LinkIndex: tun.Attrs().Index, Dst: all, Table: delayTable, Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("delay route: %w", err)
	}
	back := netlink.NewRule()
	back.IifName, back.Table, back.Priority = delayTUN, unix.RT_TABLE_MAIN, 100
	if err := h.RuleAdd(back); err != nil {
		return fmt.Errorf("delay rule: %w", err)
	}
	in := netlink.NewRule()
	in.Table, in.Priority = delayTable, 200
	if err := h.RuleAdd(in); err != nil {
		return fmt.Errorf("delay rule: %w", err)
	}
	return nil
}

// Internet is the router namespace.
func (l *Lab) Internet() *NS { return l.internet }

// newBox creates a namespace named name (unique, ≤ 12 bytes) joined to the
// internet by a link: it returns the namespace and its public address.
func (l *Lab) newBox(name string, link Link, forward bool) (*NS, netip.Addr, error) {
	if len(name) == 0 || len(name) > 12 || link.Delay < 0 || link.Rate < 0 {
		return nil, netip.Addr{}, fmt.Errorf("box %q: %w", name, ErrBadConfig)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, netip.Addr{}, ErrClosed
	}
	if l.names[name] || l.links >= 250 {
		l.mu.Unlock()
		return nil, netip.Addr{}, fmt.Errorf("box %q: name taken or too many links: %w", name, ErrBadConfig)
	}
	l.names[name] = true
	l.links++
	idx := l.links
	l.mu.Unlock()

	ns, err := l.newNS(name, forward)
	if err != nil {
		return nil, netip.Addr{}, err
	}
	subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(idx), 0}), 24)
	router := netip.AddrFrom4([4]byte{198, 18, byte(idx), 1})
	public := netip.AddrFrom4([4]byte{198, 18, byte(idx), 2})
	if err := l.connect(l.internet, fmt.Sprintf("p%d", idx), router, ns, "wan0", public, 24, link); err != nil {
		return nil, netip.Addr{}, err
	}
	if err := ns.handle.RouteAdd(&netlink.Route{Gw: net.IP(router.AsSlice())}); err != nil {
		return nil, netip.Addr{}, fmt.Errorf("default route in %s: %w", name, err)
	}
	l.delay.setDelay(subnet, link.Delay)
	return ns, public, nil
}

// newNS creates and records a namespace with IPv6 off.
func (l *Lab) newNS(name string, forward bool) (*NS, error) {
	ns, err := newNS(name)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	kvs := [][2]string{
		{"net/ipv6/conf/all/disable_ipv6", "1"},
		{"net/ipv6/conf/default/disable_ipv6", "1"},
	}
	if forward {
		kvs = append(kvs, [2]string{"net/ipv4/ip_forward", "1"})
	}
	for _, kv := range kvs {
		if err := ns.sysctl(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	return ns, nil
}

// connect joins a and b by a veth pair (aName in a with address aAddr,
// bName in b with bAddr, both /bits) shaped to link.Rate both ways.
func (l *Lab) connect(a *NS, aName string, aAddr netip.Addr, b *NS, bName string, bAddr netip.Addr, bits int, link Link) error {
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(b.fd()),
	}
	if err := a.handle.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth %s/%s–%s/%s: %w", a.Name, aName, b.Name, bName, err)
	}
	for _, end := range []struct {
		ns   *NS
		name string
		addr netip.Addr
	}{{a, aName, aAddr}, {b, bName, bAddr}} {
		h := end.ns.handle
		lk, err := h.LinkByName(end.name)
		if err != nil {
			return fmt.Errorf("link %s in %s: %w", end.name, end.ns.Name, err)
		}
		ipn := &net.IPNet{IP: net.IP(end.addr.AsSlice()), Mask: net.CIDRMask(bits, 32)}
		if err := h.AddrAdd(lk, &netlink.Addr{IPNet: ipn}); err != nil {
			return fmt.Errorf("address on %s in %s: %w", end.name, end.ns.Name, err)
		}
		if err := h.LinkSetUp(lk); err != nil {
			return fmt.Errorf("%s up in %s: %w", end.name, end.ns.Name, err)
		}
		if link.Rate > 0 {
			if err := shape(h, lk, link.Rate); err != nil {
				return fmt.Errorf("shaping %s in %s: %w", end.name, end.ns.Name, err)
			}
		}
	}
	return nil
}

// shape puts a token bucket filter of rate bits/s on lk's egress: a burst
// of 32 KiB (or one jiffy's worth at high rates) and a queue of 50 ms.
func shape(h *netlink.Handle, lk netlink.Link, rate int64) error {
	bytesPerSec := uint64(rate / 8)
	burst := uint32(32 << 10)
	if b := uint32(bytesPerSec / 250); b > burst {
		burst = b
	}
	limit := uint32(bytesPerSec/20) + burst
	tbf := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: lk.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		Rate:       bytesPerSec,
		Limit:      limit,
		Buffer:     netlink.Xmittime(bytesPerSec, burst),
	}
	return h.QdiscAdd(tbf)
}

// AddHost attaches a host with a public address.
func (l *Lab) AddHost(name string, link Link) (*Host, error) {
	ns, pub, err := l.newBox(name, link, false)
	if err != nil {
		return nil, err
	}
	return &Host{Name: name, NS: ns, Addr: pub, Public: pub}, nil
}

// AddNAT attaches a NAT of kind k; add hosts behind it with NAT.AddHost.
func (l *Lab) AddNAT(name string, k NATKind, link Link) (*NAT, error) {
	ns, pub, err := l.newBox(name, link, true)
	if err != nil {
		return nil, err
	}
	idx := pub.As4()[2]
	n := &NAT{Name: name, Kind: k, NS: ns, Public: pub, lab: l,
		LAN: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, idx, 0}), 24)}
	if err := installNAT(ns, k, "wan0", "lan0"); err != nil {
		return nil, err
	}
	return n, nil
}

// AddHost puts a host on the NAT's LAN, joined to the NAT by an unshaped,
// undelayed link.
func (n *NAT) AddHost(name string) (*Host, error) {
	l := n.lab
	if len(name) == 0 || len(name) > 12 || n.hosts >= 200 {
		return nil, fmt.Errorf("host %q: %w", name, ErrBadConfig)
	}
	l.mu.Lock()
	if l.names[name] {
		l.mu.Unlock()
		return nil, fmt.Errorf("host %q: name taken: %w", name, ErrBadConfig)
	}
	l.names[name] = true
	l.mu.Unlock()
	ns, err := l.newNS(name, false)
	if err != nil {
		return nil, err
	}
	i := n.hosts
	n.hosts++
	gw := n.LAN.Addr().Next()
	addr := lanHost(n.LAN, i)
	if i == 0 {
		if err := l.connect(n.NS, "lan0", gw, ns, "eth0", addr, 24, Link{}); err != nil {
			return nil, err
		}
	} else {
		// Further hosts share the LAN through a bridge would be more
		// faithful; a second veth per host is enough for routing.
		return nil, fmt.Errorf("host %q: one host per NAT: %w", name, ErrBadConfig)
	}
	if err := ns.handle.RouteAdd(&netlink.Route{Gw: net.IP(gw.AsSlice())}); err != nil {
		return nil, fmt.Errorf("default route in %s: %w", name, err)
	}
	return &Host{Name: name, NS: ns, Addr: addr, Public: n.Public, NAT: n}, nil
}

// Close stops the delay line and releases every namespace, with their
// links and rules.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	nss := l.nss
	l.nss = nil
	l.mu.Unlock()
	var errs []error
	if l.delay != nil {
		errs = append(errs, l.delay.close())
	}
	for _, ns := range nss {
		errs = append(errs, ns.Close())
	}
	return errors.Join(errs...)
}
