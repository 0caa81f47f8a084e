package netlab

import (
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// echoUDP echoes datagrams on h's port 7 until the test ends.
func echoUDP(t *testing.T, h *Host) *net.UDPAddr {
	t.Helper()
	return serveUDP(t, h, 7, func(p []byte, _ *net.UDPAddr) []byte { return p })
}

// serveUDP answers datagrams on h's port with what reply returns (nothing
// when it returns nil) until the test ends; it returns the bound address.
func serveUDP(t *testing.T, h *Host, port int, reply func(p []byte, from *net.UDPAddr) []byte) *net.UDPAddr {
	t.Helper()
	c, err := h.NS.ListenUDP(fmt.Sprintf("%s:%d", h.Addr, port))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() { // owned by the test: cleanup waits
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if out := reply(buf[:n], from); out != nil {
				_, _ = c.WriteToUDP(out, from)
			}
		}
	}()
	return c.LocalAddr().(*net.UDPAddr)
}

// pingRTTs sends n sequenced UDP pings from h to addr, one at a time, and
// returns the round trips of those answered, sorted.
func pingRTTs(t *testing.T, h *Host, addr *net.UDPAddr, n int) []time.Duration {
	t.Helper()
	c, err := h.NS.ListenUDP(":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rtts []time.Duration
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("ping %d", i)
		start := time.Now()
		if _, err := c.WriteToUDP([]byte(msg), addr); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(start.Add(2 * time.Second))
		for {
			m, _, err := c.ReadFromUDP(buf)
			if err != nil {
				break // lost: not counted
			}
			if string(buf[:m]) == msg {
				rtts = append(rtts, time.Since(start))
				break
			}
		}
	}
	slices.Sort(rtts)
	return rtts
}

// TestCDNRoundTrips measures the RTT between boxes of the CDN topology
// with UDP pings. The lower bound is the check (the delay line must add at
// least what it claims, less a little for clock granularity); upper bounds
// are left out, as a busy machine only adds delay. Measured values are
// logged.
func TestCDNRoundTrips(t *testing.T) {
	c := newCDN(t)
	origin, relay := echoUDP(t, c.Origin), echoUDP(t, c.Relay)
	for _, tc := range []struct {
		name string
		from *Host
		to   *net.UDPAddr
		want time.Duration
	}{
		{"visitor→origin", c.Visitor, origin, 2 * (VisitorDelay + OriginDelay)},
		{"visitor→relay", c.Visitor, relay, 2 * (VisitorDelay + RelayDelay)},
		{"seeder-cone→origin", c.ConeSeeder, origin, 2 * (ConeDelay + OriginDelay)},
		{"seeder-sym→relay", c.SymSeeder, relay, 2 * (SymDelay + RelayDelay)},
	} {
		rtts := pingRTTs(t, tc.from, tc.to, 10)
		if len(rtts) < 5 {
			t.Errorf("%s: %d of 10 pings answered", tc.name, len(rtts))
			continue
		}
		t.Logf("%s: RTT claimed %v, measured min %v median %v max %v", tc.name, tc.want,
			rtts[0].Round(10*time.Microsecond), rtts[len(rtts)/2].Round(10*time.Microsecond), rtts[len(rtts)-1].Round(10*time.Microsecond))
		if min := tc.want * 8 / 10; rtts[0] < min {
			t.Errorf("%s: RTT %v below %v (0.8 × %v claimed)", tc.name, rtts[0], min, tc.want)
		}
	}
}

// TestCDNSeederToVisitorRTT measures the RTT between the visitor and the
// seeder behind the full-cone NAT, through both NATs: the seeder's mapped
// port lets the visitor in once the seeder has sent out through it.
func TestCDNSeederToVisitorRTT(t *testing.T) {
	c := newCDN(t)
	relay := serveSTUN(t, c.Relay)
	sc, err := c.ConeSeeder.NS.ListenUDP(":0")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	m := mapped(t, sc, relay)
	done := make(chan struct{})
	defer func() { sc.Close(); <-done }()
	go func() { // owned by the test
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := sc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = sc.WriteToUDP(buf[:n], from)
		}
	}()
	rtts := pingRTTs(t, c.Visitor, m, 10)
	want := 2 * (VisitorDelay + ConeDelay)
	if len(rtts) < 5 {
		t.Fatalf("%d of 10 pings through the full-cone NAT answered", len(rtts))
	}
	t.Logf("visitor→seeder-cone (via %v): RTT claimed %v, measured min %v median %v", m, want, rtts[0], rtts[len(rtts)/2])
	if rtts[0] < want*8/10 {
		t.Errorf("RTT %v below 0.8 × %v", rtts[0], want)
	}
}

// TestCDNOriginRate sends 4 MB over TCP each way between the origin and the
// visitor and checks the origin link's rate holds: the transfer must not
// beat 1.2 × OriginRate (it would if shaping were missing), and must reach
// at least a tenth of it (it would not if the path were broken).
func TestCDNOriginRate(t *testing.T) {
	c := newCDN(t)
	ln, err := c.Origin.NS.Listen(c.Origin.Addr.String() + ":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const size = 4 << 20
	for _, dir := range []string{"down", "up"} {
		errc := make(chan error, 1)
		go func() { // owned by this loop iteration: it waits on errc
			conn, err := ln.Accept()
			if err != nil {
				errc <- err
				return
			}
			defer conn.Close()
			if dir == "down" {
				_, err = conn.Write(make([]byte, size))
			} else {
				_, err = io.Copy(io.Discard, conn)
			}
			errc <- err
		}()
		conn, err := c.Visitor.NS.DialContext(t.Context(), "tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		var start time.Time
		var n int64
		if dir == "down" {
			buf := make([]byte, 64<<10)
			for n < size {
				m, err := conn.Read(buf)
				if n == 0 && m > 0 {
					start = time.Now() // from the first byte: the handshake's RTT is not rate
				}
				n += int64(m)
				if err != nil {
					break
				}
			}
			n -= int64(min(n, 64<<10)) // the first read's bytes came before start
		} else {
			start = time.Now()
			m, _ := conn.Write(make([]byte, size))
			n = int64(m)
			conn.(*net.TCPConn).CloseWrite()
			_, _ = io.Copy(io.Discard, conn) // until the origin has read it all
		}
		el := time.Since(start)
		conn.Close()
		if err := <-errc; err != nil {
			t.Fatalf("%s: origin side: %v", dir, err)
		}
		rate := float64(n*8) / el.Seconds()
		t.Logf("%s: %d bytes in %v: %.2f Mbit/s (claimed %.0f Mbit/s)", dir, n, el.Round(time.Millisecond), rate/1e6, float64(OriginRate)/1e6)
		if rate > 1.2*OriginRate {
			t.Errorf("%s: %.2f Mbit/s is above 1.2 × the link's %d bit/s", dir, rate/1e6, OriginRate)
		}
		if rate < 0.1*OriginRate {
			t.Errorf("%s: %.2f Mbit/s is below a tenth of the link's %d bit/s", dir, rate/1e6, OriginRate)
		}
	}
}
