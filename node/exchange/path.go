package exchange

// Path is the network path of an open connection: the selected ICE
// candidate pair (RFC 8445 §4), as this side sees it.
type Path struct {
	// Peer is the peer's ID.
	Peer string
	// Local and Remote are the pair's candidate types: "host", "srflx"
	// (server-reflexive, through a NAT's mapping), "prflx" (peer-reflexive)
	// or "relay" (TURN); empty while unknown.
	Local, Remote string
	// LocalAddr and RemoteAddr are the candidates' "ip:port".
	LocalAddr, RemoteAddr string
}

// Relayed reports whether the path goes through a TURN server.
func (p Path) Relayed() bool { return p.Local == "relay" || p.Remote == "relay" }
