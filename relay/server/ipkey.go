package relayserver

import (
	"net"
	"net/netip"
)

// IPKey returns the prefix that per-address limits count a client under:
// an IPv4 address alone (/32), and for IPv6 the /64 it belongs to, since one
// subscriber, host or virtual machine usually holds a whole /64 and picks any
// address in it at will (RFC 4291 §2.5.1, RFC 8981). IPv4-mapped IPv6
// addresses count as IPv4. The zero Addr gives the zero Prefix.
func IPKey(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits) // bits fit the family: no error
	return p
}

// ipKeyOf is IPKey for a net.Addr of a UDP or TCP socket (or an IP); the
// zero Prefix for anything else.
func ipKeyOf(addr net.Addr) netip.Prefix {
	switch a := addr.(type) {
	case *net.UDPAddr:
		return ipKeyOfIP(a.IP)
	case *net.TCPAddr:
		return ipKeyOfIP(a.IP)
	case *net.IPAddr:
		return ipKeyOfIP(a.IP)
	}
	if addr == nil {
		return netip.Prefix{}
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Prefix{}
	}
	return IPKey(ap.Addr())
}

func ipKeyOfIP(ip net.IP) netip.Prefix {
	a, _ := netip.AddrFromSlice(ip)
	return IPKey(a)
}
