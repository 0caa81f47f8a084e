package relayserver_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	relayserver "github.com/hearthcdn/hearth/relay/server"
)

var turnSecret = []byte("0123456789abcdef-test-secret")

func quietPion() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.DefaultLogLevel = logging.LogLevelDisabled
	return f
}

func startTURN(t *testing.T, cfg relayserver.TURNConfig) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Conn = pc
	if cfg.RelayIP == nil {
		cfg.RelayIP = net.IPv4(127, 0, 0, 1)
		cfg.RelayBind = "127.0.0.1"
	}
	ts, err := relayserver.NewTURN(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ts.Close(); err != nil {
			t.Error(err)
		}
	})
	return pc.LocalAddr().String()
}

func turnClient(t *testing.T, addr, user, pass string) *turn.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: user, Password: pass, Realm: "hearth",
		RTO: 100 * time.Millisecond, LoggerFactory: quietPion(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); _ = conn.Close() })
	return c
}

func TestSTUNBinding(t *testing.T) {
	addr := startTURN(t, relayserver.TURNConfig{}) // no secret: STUN only
	c := turnClient(t, addr, "", "")
	mapped, err := c.SendBindingRequest()
	if err != nil {
		t.Fatal(err)
	}
	ua, ok := mapped.(*net.UDPAddr)
	if !ok || !ua.IP.Equal(net.IPv4(127, 0, 0, 1)) || ua.Port == 0 {
		t.Fatalf("mapped address %v", mapped)
	}
	// STUN only: allocations are refused.
	if _, err := c.Allocate(); err == nil {
		t.Fatal("allocation on a STUN-only server")
	}
}

func TestTURNCredentialFlow(t *testing.T) {
	addr := startTURN(t, relayserver.TURNConfig{Secret: turnSecret, AllowPrivatePeers: true})
	r := startRelay(t, relayserver.Config{
		STUNURLs:   []string{"stun:" + addr},
		TURNURLs:   []string{"turn:" + addr + "?transport=udp"},
		TURNSecret: turnSecret,
		TURNTTL:    10 * time.Minute,
	}, nil)
	c := newClient(t, r, nil)
	ice, err := c.ICEServers(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(ice.Servers) != 2 || ice.Servers[0].URLs[0] != "stun:"+addr || ice.Servers[0].Username != "" {
		t.Fatalf("servers: %+v", ice.Servers)
	}
	ts := ice.Servers[1]
	if ts.URLs[0] != "turn:"+addr+"?transport=udp" || !strings.HasSuffix(ts.Username, ":"+c.ID().String()) || ts.Credential == "" {
		t.Fatalf("turn server: %+v", ts)
	}
	if d := time.Until(ice.Expires); d < 9*time.Minute || d > 11*time.Minute {
		t.Fatalf("expires in %v", d)
	}

	// The credentials allocate a relayed address that carries data both
	// ways to a peer.
	tc := turnClient(t, addr, ts.Username, ts.Credential)
	relayed, err := tc.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := relayed.WriteTo([]byte("through turn"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_ = peer.SetReadDeadline(time.Now().Add(testTimeout))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "through turn" || from.String() != relayed.LocalAddr().String() {
		t.Fatalf("peer got %q from %v (relayed %v): %v", buf[:n], from, relayed.LocalAddr(), err)
	}
	if _, err := peer.WriteTo([]byte("back"), from); err != nil {
		t.Fatal(err)
	}
	_ = relayed.SetReadDeadline(time.Now().Add(testTimeout))
	n, _, err = relayed.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "back" {
		t.Fatalf("client got %q: %v", buf[:n], err)
	}
}

func TestTURNRefusesBadCredentials(t *testing.T) {
	addr := startTURN(t, relayserver.TURNConfig{Secret: turnSecret, AllowPrivatePeers: true})
	expiredUser, expiredPass := relayserver.TURNCredentials(turnSecret, "peer", time.Now().Add(-time.Minute))
	goodUser, _ := relayserver.TURNCredentials(turnSecret, "peer", time.Now().Add(time.Minute))
	_, otherPass := relayserver.TURNCredentials([]byte("another-secret-of-16+"), "peer", time.Now().Add(time.Minute))
	for _, tc := range []struct{ name, user, pass string }{
		{"expired", expiredUser, expiredPass},
		{"wrong secret", goodUser, otherPass},
		{"no expiry", "peer", otherPass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := turnClient(t, addr, tc.user, tc.pass)
			if _, err := c.Allocate(); err == nil {
				t.Fatal("allocated")
			}
		})
	}
}

func TestTURNRefusesPrivatePeers(t *testing.T) {
	addr := startTURN(t, relayserver.TURNConfig{Secret: turnSecret})
	user, pass := relayserver.TURNCredentials(turnSecret, "peer", time.Now().Add(time.Minute))
	c := turnClient(t, addr, user, pass)
	relayed, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
	// Relaying into the relay's own network (here loopback) is refused.
	if _, err := relayed.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); err == nil {
		t.Fatal("relayed to loopback")
	}
}

func TestTURNCredentialsFormat(t *testing.T) {
	// The coturn REST API form, checkable by pion's own handler.
	exp := time.Unix(1_900_000_000, 0)
	user, pass := relayserver.TURNCredentials(turnSecret, "bpeer", exp)
	if user != "1900000000:bpeer" {
		t.Fatalf("username %q", user)
	}
	h := turn.LongTermTURNRESTAuthHandler(string(turnSecret), quietPion().NewLogger("test"))
	_, key, ok := h(&turn.RequestAttributes{Username: user, Realm: "hearth"})
	if !ok || string(key) != string(turn.GenerateAuthKey(user, "hearth", pass)) {
		t.Fatal("pion's REST handler disagrees")
	}
}
