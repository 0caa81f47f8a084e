package netlab

import (
	"context"
	"net"

	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/stdnet"
)

// pionNet is a pion transport.Net whose sockets all open inside one
// namespace, so a pion ICE agent in this process gathers and connects as a
// host in that namespace would (SettingEngine.SetNet).
type pionNet struct {
	ns  *NS
	std *stdnet.Net // interfaces read inside ns
}

var _ transport.Net = (*pionNet)(nil)

// PionNet returns a pion transport.Net for the namespace: give it to
// webrtc.SettingEngine.SetNet (or ice.AgentConfig.Net) and every socket of
// that agent — host, server-reflexive and TURN — is a socket of this
// namespace, and only its interfaces are gathered.
func (n *NS) PionNet() (transport.Net, error) {
	var std *stdnet.Net
	err := n.Do(func() (err error) {
		std, err = stdnet.NewNet()
		return err
	})
	if err != nil {
		return nil, err
	}
	return &pionNet{ns: n, std: std}, nil
}

func (p *pionNet) ListenPacket(network, address string) (c net.PacketConn, err error) {
	err = p.ns.Do(func() (err error) { c, err = p.std.ListenPacket(network, address); return err })
	return c, err
}

func (p *pionNet) ListenUDP(network string, laddr *net.UDPAddr) (c transport.UDPConn, err error) {
	err = p.ns.Do(func() (err error) { c, err = p.std.ListenUDP(network, laddr); return err })
	return c, err
}

func (p *pionNet) ListenTCP(network string, laddr *net.TCPAddr) (l transport.TCPListener, err error) {
	err = p.ns.Do(func() (err error) { l, err = p.std.ListenTCP(network, laddr); return err })
	return l, err
}

func (p *pionNet) Dial(network, address string) (c net.Conn, err error) {
	err = p.ns.Do(func() (err error) { c, err = p.std.Dial(network, address); return err })
	return c, err
}

func (p *pionNet) DialUDP(network string, laddr, raddr *net.UDPAddr) (c transport.UDPConn, err error) {
	err = p.ns.Do(func() (err error) { c, err = p.std.DialUDP(network, laddr, raddr); return err })
	return c, err
}

func (p *pionNet) DialTCP(network string, laddr, raddr *net.TCPAddr) (c transport.TCPConn, err error) {
	err = p.ns.Do(func() (err error) { c, err = p.std.DialTCP(network, laddr, raddr); return err })
	return c, err
}

func (p *pionNet) ResolveIPAddr(network, address string) (*net.IPAddr, error) {
	return p.std.ResolveIPAddr(network, address)
}

func (p *pionNet) ResolveUDPAddr(network, address string) (*net.UDPAddr, error) {
	return p.std.ResolveUDPAddr(network, address)
}

func (p *pionNet) ResolveTCPAddr(network, address string) (*net.TCPAddr, error) {
	return p.std.ResolveTCPAddr(network, address)
}

func (p *pionNet) Interfaces() ([]*transport.Interface, error) { return p.std.Interfaces() }

func (p *pionNet) InterfaceByIndex(i int) (*transport.Interface, error) {
	return p.std.InterfaceByIndex(i)
}

func (p *pionNet) InterfaceByName(name string) (*transport.Interface, error) {
	return p.std.InterfaceByName(name)
}

func (p *pionNet) CreateDialer(d *net.Dialer) transport.Dialer {
	return nsDialer{ns: p.ns, d: d}
}

func (p *pionNet) CreateListenConfig(lc *net.ListenConfig) transport.ListenConfig {
	return nsListenConfig{ns: p.ns, lc: lc}
}

type nsDialer struct {
	ns *NS
	d  *net.Dialer
}

func (d nsDialer) Dial(network, address string) (c net.Conn, err error) {
	err = d.ns.Do(func() (err error) { c, err = d.d.Dial(network, address); return err })
	return c, err
}

type nsListenConfig struct {
	ns *NS
	lc *net.ListenConfig
}

func (l nsListenConfig) Listen(ctx context.Context, network, address string) (ln net.Listener, err error) {
	err = l.ns.Do(func() (err error) { ln, err = l.lc.Listen(ctx, network, address); return err })
	return ln, err
}

func (l nsListenConfig) ListenPacket(ctx context.Context, network, address string) (c net.PacketConn, err error) {
	err = l.ns.Do(func() (err error) { c, err = l.lc.ListenPacket(ctx, network, address); return err })
	return c, err
}
