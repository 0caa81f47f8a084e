package relayserver_test

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/coder/websocket"

	relayserver "github.com/hearthcdn/hearth/relay/server"
)

func TestIPKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"198.51.100.7", "198.51.100.7/32"},
		{"::ffff:198.51.100.7", "198.51.100.7/32"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
	} {
		if got := relayserver.IPKey(netip.MustParseAddr(tc.in)); got != netip.MustParsePrefix(tc.want) {
			t.Errorf("IPKey(%s) = %v, want %s", tc.in, got, tc.want)
		}
	}
	if a, b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:3::1"); relayserver.IPKey(a) == relayserver.IPKey(b) {
		t.Error("two /64s share a key")
	}
	if got := relayserver.IPKey(netip.Addr{}); got != (netip.Prefix{}) {
		t.Errorf("IPKey of the zero Addr = %v", got)
	}
}

func TestConnsPerIPv6Prefix(t *testing.T) {
	r := startRelay(t, relayserver.Config{MaxConnsPerIP: 1, TrustProxy: true}, nil)
	dial := func(ip string) int {
		h := http.Header{}
		h.Set("X-Forwarded-For", ip)
		ws, resp, err := websocket.Dial(ctxT(t), r.url, &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			if resp == nil {
				t.Fatal(err)
			}
			return resp.StatusCode
		}
		t.Cleanup(func() { _ = ws.CloseNow() })
		return resp.StatusCode
	}
	if code := dial("2001:db8:1:2::1"); code != http.StatusSwitchingProtocols {
		t.Fatalf("first connection: %d", code)
	}
	// Another address of the same /64 is the same client.
	if code := dial("2001:db8:1:2:aaaa:bbbb:cccc:dddd"); code != http.StatusTooManyRequests {
		t.Fatalf("second address in the /64: %d, want 429", code)
	}
	// The next /64 is another.
	if code := dial("2001:db8:1:3::1"); code != http.StatusSwitchingProtocols {
		t.Fatalf("another /64: %d", code)
	}
}
