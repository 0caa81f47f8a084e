//go:build !js

package exchange

import (
	"net"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/stdnet"
	"github.com/pion/webrtc/v4"
)

// newAPI builds the pion API with Hearth's tuning (README.md, "Tuning").
func newAPI(cfg *TransportConfig, t *Transport) (*webrtc.API, error) {
	var se webrtc.SettingEngine
	se.LoggerFactory = pionLogs{log: cfg.Logger}
	// Detached channels: read and write whole messages through
	// io-style calls into our own buffers, instead of a callback per message
	// with a fresh allocation.
	se.DetachDataChannels()
	// The SCTP receive window (advertised rwnd), at most 768 KiB: pion
	// queues received datagrams in 1,000,000-byte buffers (ICE agent, DTLS
	// mux) and drops what overflows them, silently; a window above that
	// (pion's default is 1 MiB) lets a fast sender overrun them, and each
	// loss costs a retransmission and a smaller congestion window.
	se.SetSCTPMaxReceiveBufferSize(uint32(cfg.SCTPReceiveBuffer))
	// RFC 9653: DTLS already authenticates every packet, so peers that
	// agree skip SCTP's CRC32c; negotiated, so safe with any peer.
	se.EnableSCTPZeroChecksum(true)
	// SNAP: the SCTP INIT travels in the SDP (a=sctp-init), which saves
	// the association's handshake round trip; used only when both sides
	// offer it.
	se.EnableSctpSnap(true)
	// Notice a vanished peer in seconds, not pion's default 30.
	se.SetICETimeouts(4*time.Second, 8*time.Second, time.Second)
	if cfg.IncludeLoopback || cfg.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
	}
	if cfg.LoopbackOnly {
		se.SetInterfaceFilter(func(name string) bool { return strings.HasPrefix(name, "lo") })
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	n := cfg.Net
	if n == nil {
		std, err := stdnet.NewNet()
		if err != nil {
			return nil, err
		}
		n = std
	}
	se.SetNet(&bufferedNet{Net: n, size: cfg.UDPBuffer})
	// Data only: no codecs, and none of the default media interceptors
	// (NACK, RTCP reports, TWCC), each a goroutine and a ticker per
	// connection that a data channel never uses.
	return webrtc.NewAPI(
		webrtc.WithSettingEngine(se),
		webrtc.WithMediaEngine(&webrtc.MediaEngine{}),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}),
	), nil
}

// bufferedNet is the OS network with larger socket buffers on the UDP
// sockets ICE opens: a data channel at full speed bursts more packets than
// the default 208 KiB SO_RCVBUF holds while the reading goroutine is
// descheduled, and every drop costs an SCTP retransmission and a halved
// congestion window (README.md, "Tuning").
type bufferedNet struct {
	transport.Net
	size int
}

type socketBuffers interface {
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
}

func (n *bufferedNet) grow(c any) {
	if b, ok := c.(socketBuffers); ok {
		_ = b.SetReadBuffer(n.size) // best effort: capped by rmem_max
		_ = b.SetWriteBuffer(n.size)
	}
}

func (n *bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	n.grow(c)
	return c, nil
}

func (n *bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	n.grow(c)
	return c, nil
}
