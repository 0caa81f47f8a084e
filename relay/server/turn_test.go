package relayserver_test

import (
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"

	"github.com/hearthcdn/hearth/relay"
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
	// The peer is on another loopback address: 127.0.0.1 is the relay's
	// own, which it refuses to relay to.
	peer, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
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

// turnCode returns the STUN error code of a TURN error response, or 0.
func turnCode(err error) stun.ErrorCode {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return te.ErrorCodeAttr.Code
	}
	return 0
}

// allocate allocates on addr with a new client (a new local port on
// 127.0.0.1) and credentials for peer expiring in exp.
func allocate(t *testing.T, addr, peer string, exp time.Duration) (net.PacketConn, error) {
	t.Helper()
	user, pass := relayserver.TURNCredentials(turnSecret, peer, time.Now().Add(exp))
	return turnClient(t, addr, user, pass).Allocate()
}

func TestTURNAllocationsPerPeer(t *testing.T) {
	addr := startTURN(t, relayserver.TURNConfig{Secret: turnSecret, MaxAllocationsPerPeer: 2, MaxAllocationsPerIP: 100})
	// Each allocation uses another credential of the same peer, as a peer
	// asking the relay again and again would hold.
	first, err := allocate(t, addr, "peerA", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := allocate(t, addr, "peerA", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := allocate(t, addr, "peerA", 3*time.Minute); turnCode(err) != stun.CodeAllocQuotaReached {
		t.Fatalf("third allocation of one peer: %v, want 486", err)
	}
	// Another peer from the same address is not held back.
	if _, err := allocate(t, addr, "peerB", time.Minute); err != nil {
		t.Fatal(err)
	}
	// A deleted allocation frees its place. The client sends the refresh
	// with lifetime 0 before Close returns, on loopback, and the server
	// reads its socket in order: the deletion comes first.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := allocate(t, addr, "peerA", 4*time.Minute); err != nil {
		t.Fatalf("allocation after one was deleted: %v", err)
	}
}

func TestTURNAllocationsPerIP(t *testing.T) {
	addr := startTURN(t, relayserver.TURNConfig{Secret: turnSecret, MaxAllocationsPerPeer: 100, MaxAllocationsPerIP: 2})
	// Keys cost nothing: three peers from one address share its limit.
	for i, peer := range []string{"p1", "p2"} {
		if _, err := allocate(t, addr, peer, time.Minute); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	if _, err := allocate(t, addr, "p3", time.Minute); turnCode(err) != stun.CodeAllocQuotaReached {
		t.Fatalf("third allocation from one address: %v, want 486", err)
	}
}

// addrSetter adds an address as the attribute of type typ.
type addrSetter struct {
	typ  stun.AttrType
	addr *net.UDPAddr
}

func (a addrSetter) AddTo(m *stun.Message) error {
	return (&stun.XORMappedAddress{IP: a.addr.IP, Port: a.addr.Port}).AddToAs(m, a.typ)
}

// channelBind sends an authenticated ChannelBind request (RFC 8656 §11)
// for peer on c's allocation and returns the response's class and error
// code.
func channelBind(t *testing.T, c *turn.Client, user, pass string, ch uint16, peer *net.UDPAddr) (stun.MessageClass, stun.ErrorCode) {
	t.Helper()
	chAttr := stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(ch >> 8), byte(ch), 0, 0}}
	typ := stun.NewType(stun.MethodChannelBind, stun.ClassRequest)
	// The first request, without credentials, fetches a nonce.
	msg := stun.MustBuild(stun.TransactionID, typ, &chAttr, addrSetter{stun.AttrXORPeerAddress, peer}, stun.Fingerprint)
	res, err := c.PerformTransaction(msg, c.TURNServerAddr(), false)
	if err != nil {
		t.Fatal(err)
	}
	var nonce stun.Nonce
	if err := nonce.GetFrom(res.Msg); err != nil {
		t.Fatalf("no nonce in %v: %v", res.Msg, err)
	}
	msg = stun.MustBuild(stun.TransactionID, typ, &chAttr, addrSetter{stun.AttrXORPeerAddress, peer},
		stun.NewUsername(user), stun.NewRealm("hearth"), nonce,
		stun.NewLongTermIntegrity(user, "hearth", pass), stun.Fingerprint)
	res, err = c.PerformTransaction(msg, c.TURNServerAddr(), false)
	if err != nil {
		t.Fatal(err)
	}
	var code stun.ErrorCodeAttribute
	if res.Msg.Type.Class == stun.ClassErrorResponse {
		_ = code.GetFrom(res.Msg)
	}
	return res.Msg.Type.Class, code.Code
}

func TestTURNRefusesOwnAddresses(t *testing.T) {
	public := net.ParseIP("203.0.113.7")  // the relay's public address
	other := net.ParseIP("198.51.100.77") // another address of its host
	stranger := &net.UDPAddr{IP: net.ParseIP("198.51.100.9"), Port: 4000}
	for _, tc := range []struct {
		name         string
		allowPrivate bool
		refused      []*net.UDPAddr
	}{
		{"public", false, []*net.UDPAddr{
			{IP: public, Port: 9}, {IP: public, Port: 8081}, {IP: other, Port: 22},
		}},
		// Even where private peers are allowed, the relay's own address,
		// and the unspecified one that reaches it, stay refused.
		{"private allowed", true, []*net.UDPAddr{
			{IP: public, Port: 9}, {IP: net.IPv4(127, 0, 0, 1), Port: 9}, {IP: net.IPv4zero, Port: 9},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startTURN(t, relayserver.TURNConfig{
				Secret: turnSecret, RelayIP: public, RelayBind: "127.0.0.1",
				OwnIPs: []net.IP{other}, AllowPrivatePeers: tc.allowPrivate,
			})
			user, pass := relayserver.TURNCredentials(turnSecret, "peer", time.Now().Add(time.Minute))
			c := turnClient(t, addr, user, pass)
			relayed, err := c.Allocate()
			if err != nil {
				t.Fatal(err)
			}
			defer relayed.Close()
			for i, to := range tc.refused {
				if err := c.CreatePermission(to); turnCode(err) != stun.CodeForbidden {
					t.Errorf("CreatePermission to %v: %v, want 403", to, err)
				}
				if class, code := channelBind(t, c, user, pass, 0x4000+uint16(i), to); class != stun.ClassErrorResponse {
					t.Errorf("ChannelBind to %v: %v %v, want refused", to, class, code)
				}
			}
			// Other public addresses are fine, by both ways.
			if err := c.CreatePermission(stranger); err != nil {
				t.Fatalf("CreatePermission to %v: %v", stranger, err)
			}
			if class, code := channelBind(t, c, user, pass, 0x4100, stranger); class != stun.ClassSuccessResponse {
				t.Fatalf("ChannelBind to %v: %v %v", stranger, class, code)
			}
		})
	}
}

func TestICEOneCredentialPerConnection(t *testing.T) {
	var offset atomic.Int64 // nanoseconds the test clock is ahead
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	const ttl = 10 * time.Minute
	r := startRelay(t, relayserver.Config{
		TURNURLs: []string{"turn:127.0.0.1:3478?transport=udp"}, TURNSecret: turnSecret, TURNTTL: ttl, Now: now,
	}, nil)
	c := newClient(t, r, nil)
	turnOf := func() (relay.ICEServer, time.Time) {
		t.Helper()
		ice, err := c.ICEServers(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(ice.Servers) != 1 {
			t.Fatalf("servers: %+v", ice.Servers)
		}
		return ice.Servers[0], ice.Expires
	}
	first, exp := turnOf()
	// Asked again and again, a minute apart, while more than half of the
	// TTL is left: the same credential.
	for range 4 {
		offset.Add(int64(time.Minute))
		if s, e := turnOf(); s.Username != first.Username || s.Credential != first.Credential || !e.Equal(exp) {
			t.Fatalf("second credential %q (expires %v) on one connection; first %q (%v)", s.Username, e, first.Username, exp)
		}
	}
	// Past half of it, a fresh one, valid for the whole TTL.
	offset.Add(int64(2 * time.Minute))
	s, e := turnOf()
	if s.Username == first.Username || s.Credential == first.Credential || !e.After(exp) {
		t.Fatalf("credential %q (expires %v) not renewed; first %q (%v)", s.Username, e, first.Username, exp)
	}
	if d := e.Sub(now()); d < ttl-time.Minute || d > ttl+time.Minute {
		t.Fatalf("renewed credential expires in %v", d)
	}
}
