package netlab

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NATKind is the behaviour of a NAT box, in the terms of RFC 4787: how it
// maps an inside (address, port) to an outside port, and which outside
// hosts it lets in through that port.
type NATKind int

const (
	// FullCone is endpoint-independent mapping and endpoint-independent
	// filtering (RFC 4787 §4.1, §5): one public port per inside socket,
	// whatever the destination, and anyone may send to it once it exists
	// — a "full cone" home router. A STUN server's answer is the address
	// every peer can reach: a server-reflexive candidate is enough.
	FullCone NATKind = iota
	// PortRestricted is endpoint-independent mapping with address-and-port
	// dependent filtering: Linux's plain masquerade, most home routers.
	PortRestricted
	// Symmetric is address-and-port dependent mapping and filtering: each
	// destination gets a fresh random public port, as on carrier-grade
	// NAT. The port a STUN server sees is useless to anyone else: only
	// TURN reaches a host behind it.
	Symmetric
)

func (k NATKind) String() string {
	switch k {
	case FullCone:
		return "full-cone"
	case PortRestricted:
		return "port-restricted"
	case Symmetric:
		return "symmetric"
	}
	return fmt.Sprintf("NATKind(%d)", int(k))
}

// mappingTimeout is how long a full-cone mapping lets outsiders in after
// the inside host last sent through it (RFC 4787 REQ-5 asks ≥ 2 min).
const mappingTimeout = 2 * time.Minute

// installNAT writes the nftables ruleset of a NAT box of kind k: wan and
// lan are its interface names. Linux conntrack keeps an inside socket's
// source port when it can (endpoint-independent mapping) and lets in only
// replies from the destination a flow was opened to (address-and-port
// dependent filtering); that is PortRestricted. Symmetric adds
// fully-random port selection (NF_NAT_RANGE_PROTO_RANDOM_FULLY), so each
// new destination gets a new port. FullCone adds the missing
// endpoint-independent filtering: every UDP packet going out records its
// source port → inside address in a dynamic map (refreshed on use, expiring
// after mappingTimeout), and a packet from outside to a mapped port is
// DNAT-ed to that inside address, whoever sent it.
func installNAT(ns *NS, k NATKind, wan, lan string) error {
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd()))
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", ns.Name, err)
	}
	tab := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "netlab"})
	post := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: tab, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	masq := &expr.Masq{FullyRandom: k == Symmetric}
	c.AddRule(&nftables.Rule{Table: tab, Chain: post, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(wan)},
		masq,
	}})
	if k == FullCone {
		mapped := &nftables.Set{
			Table: tab, Name: "mapped", IsMap: true, HasTimeout: true, Dynamic: true,
			Timeout: mappingTimeout, KeyType: nftables.TypeInetService, DataType: nftables.TypeIPAddr,
		}
		if err := c.AddSet(mapped, nil); err != nil {
			return fmt.Errorf("nftables map in %s: %w", ns.Name, err)
		}
		fwd := c.AddChain(&nftables.Chain{
			Name: "forward", Table: tab, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter,
		})
		c.AddRule(&nftables.Rule{Table: tab, Chain: fwd, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(lan)},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2}, // udp sport
			&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},  // ip saddr
			&expr.Dynset{SrcRegKey: 1, SrcRegData: 2, SetName: mapped.Name, SetID: mapped.ID,
				Operation: uint32(unix.NFT_DYNSET_OP_UPDATE), Timeout: mappingTimeout},
		}})
		pre := c.AddChain(&nftables.Chain{
			Name: "prerouting", Table: tab, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest,
		})
		c.AddRule(&nftables.Rule{Table: tab, Chain: pre, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(wan)},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}, // udp dport
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: mapped.Name, SetID: mapped.ID},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables rules (%s) in %s: %w", k, ns.Name, err)
	}
	return nil
}

// ifname pads an interface name as nftables compares it (IFNAMSIZ bytes).
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// lanHost is the address of the i-th host (from 0) on a NAT's LAN.
func lanHost(lan netip.Prefix, i int) netip.Addr {
	a := lan.Addr().As4()
	a[3] = byte(2 + i)
	return netip.AddrFrom4(a)
}
