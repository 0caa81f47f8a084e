// Package netlab builds an emulated internet out of Linux network
// namespaces, for tests that need NAT, latency and thin links: an
// "internet" router namespace, public hosts and NAT boxes joined to it by
// veth pairs, and hosts behind each NAT.
//
// A Lab creates its namespaces itself (unshare(2) on a throwaway thread)
// and holds them by file descriptor only, so nothing is left behind when
// the process ends, and nothing is added to the machine's own namespace.
// Links, addresses, routes and qdiscs are set over netlink; NAT rules over
// nftables' netlink API (no nft or tc binaries needed).
//
//   - NAT kinds (RFC 4787): FullCone (endpoint-independent mapping and
//     filtering: masquerade plus a dynamic map of outgoing UDP source ports
//     that inbound packets are DNAT-ed through), PortRestricted (plain
//     masquerade: endpoint-independent mapping, address-and-port dependent
//     filtering) and Symmetric (masquerade with fully-random ports: a new
//     port per destination).
//   - Rate: a token bucket (TBF) on both ends of a link.
//   - Latency: the kernel may lack netem, so the router namespace
//     policy-routes every forwarded packet through a TUN device; a Go delay
//     line holds each packet for the one-way delays of its ingress and
//     egress links before handing it back.
//
// Code runs "on a host" through NS.Do (sockets opened inside stay in the
// namespace), NS.DialContext and NS.Listen for Go clients and servers,
// NS.PionNet for pion WebRTC/ICE agents, and NS.Command for processes.
// NewCDN builds Hearth's reference topology. Everything needs root, veth
// and /dev/net/tun; Check says whether the machine allows it (tests skip
// on ErrUnsupported). See README.md.
package netlab
