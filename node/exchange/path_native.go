//go:build !js

package exchange

import (
	"net"
	"strconv"
)

// Paths returns the selected candidate pair of every open connection
// (pion's ICETransport.GetSelectedCandidatePair). Native only; on js it
// returns nil.
func (t *Transport) Paths() []Path {
	t.mu.Lock()
	conns := make([]*rtcConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	var out []Path
	for _, c := range conns {
		p := Path{Peer: c.peer}
		if sctp := c.pc.SCTP(); sctp != nil {
			pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
			if err == nil && pair != nil {
				p.Local, p.Remote = pair.Local.Typ.String(), pair.Remote.Typ.String()
				p.LocalAddr = net.JoinHostPort(pair.Local.Address, strconv.Itoa(int(pair.Local.Port)))
				p.RemoteAddr = net.JoinHostPort(pair.Remote.Address, strconv.Itoa(int(pair.Remote.Port)))
			}
		}
		out = append(out, p)
	}
	return out
}
