package netlab

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// newLab returns a lab closed at cleanup, or skips when the machine cannot
// run one.
func newLab(t *testing.T) *Lab {
	t.Helper()
	l, err := New()
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("network lab unavailable: %v (needs root, network namespaces, veth and /dev/net/tun)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("closing lab: %v", err)
		}
	})
	return l
}

func newCDN(t *testing.T) *CDN {
	t.Helper()
	c, err := NewCDN()
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("network lab unavailable: %v (needs root, network namespaces, veth and /dev/net/tun)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Lab.Close(); err != nil {
			t.Errorf("closing lab: %v", err)
		}
	})
	return c
}

// serveSTUN answers STUN binding requests on a UDP socket of h until the
// test ends; it returns the server's address.
func serveSTUN(t *testing.T, h *Host) *net.UDPAddr {
	t.Helper()
	return serveUDP(t, h, 3478, func(p []byte, from *net.UDPAddr) []byte {
		req := &stun.Message{Raw: append([]byte(nil), p...)}
		if req.Decode() != nil || req.Type != stun.BindingRequest {
			return nil
		}
		res, err := stun.Build(req, stun.BindingSuccess,
			&stun.XORMappedAddress{IP: from.IP, Port: from.Port}, stun.Fingerprint)
		if err != nil {
			return nil
		}
		return res.Raw
	})
}

// mapped asks the STUN server srv which address c's datagrams come from.
func mapped(t *testing.T, c *net.UDPConn, srv *net.UDPAddr) *net.UDPAddr {
	t.Helper()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	buf := make([]byte, 1500)
	for try := 0; try < 5; try++ {
		if _, err := c.WriteToUDP(req.Raw, srv); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		res := &stun.Message{Raw: buf[:n]}
		if res.Decode() != nil || res.TransactionID != req.TransactionID {
			continue
		}
		var xa stun.XORMappedAddress
		if err := xa.GetFrom(res); err != nil {
			t.Fatal(err)
		}
		return &net.UDPAddr{IP: xa.IP, Port: xa.Port}
	}
	t.Fatalf("no STUN answer from %v", srv)
	return nil
}
