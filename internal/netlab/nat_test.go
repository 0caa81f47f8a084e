package netlab

import (
	"net"
	"testing"
	"time"
)

// TestNATBehaviour checks each NAT kind the way a STUN client classifies
// a NAT (RFC 5780): one inside socket asks two STUN servers on different
// public addresses for its mapped address (mapping), then a third host it
// never sent to sends to that mapped address (filtering).
func TestNATBehaviour(t *testing.T) {
	l := newLab(t)
	s1h, err := l.AddHost("stun1", Link{})
	if err != nil {
		t.Fatal(err)
	}
	s2h, err := l.AddHost("stun2", Link{})
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := l.AddHost("stranger", Link{})
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := serveSTUN(t, s1h), serveSTUN(t, s2h)
	for _, tc := range []struct {
		kind            NATKind
		sameMapping     bool // endpoint-independent mapping
		strangerReaches bool // endpoint-independent filtering
	}{
		{FullCone, true, true},
		{PortRestricted, true, false},
		{Symmetric, false, false},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			nat, err := l.AddNAT("nat-"+tc.kind.String()[:3], tc.kind, Link{})
			if err != nil {
				t.Fatal(err)
			}
			in, err := nat.AddHost("in-" + tc.kind.String()[:3])
			if err != nil {
				t.Fatal(err)
			}
			c, err := in.NS.ListenUDP(":0")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			m1, m2 := mapped(t, c, s1), mapped(t, c, s2)
			t.Logf("%s: inside %v, mapped by %v as %v, by %v as %v", tc.kind, c.LocalAddr(), s1, m1, s2, m2)
			if !m1.IP.Equal(nat.Public.AsSlice()) {
				t.Errorf("mapped address %v is not the NAT's %v", m1.IP, nat.Public)
			}
			if got := m1.String() == m2.String(); got != tc.sameMapping {
				t.Errorf("same mapping for both servers = %v, want %v", got, tc.sameMapping)
			}
			sc, err := stranger.NS.ListenUDP(":0")
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			got := false
			buf := make([]byte, 64)
			for try := 0; try < 3 && !got; try++ {
				if _, err := sc.WriteToUDP([]byte("knock"), m1); err != nil {
					t.Fatal(err)
				}
				_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				n, from, err := c.ReadFromUDP(buf)
				got = err == nil && string(buf[:n]) == "knock" && from.IP.Equal(net.IP(stranger.Addr.AsSlice()))
			}
			if got != tc.strangerReaches {
				t.Errorf("a stranger reaches the mapped address = %v, want %v", got, tc.strangerReaches)
			}
		})
	}
}
