package netlab_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/internal/netlab"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/exchange"
	"github.com/hearthcdn/hearth/relay"
	relayserver "github.com/hearthcdn/hearth/relay/server"
	"github.com/hearthcdn/hearth/wasm/swarm"
)

// startLabRelay runs Hearth's relay on the lab's relay host: signalling on
// :8080 and STUN+TURN on :3478, advertised in its ice answers. It returns
// the relay's WebSocket URL.
func startLabRelay(t *testing.T, c *netlab.CDN) string {
	t.Helper()
	pub := c.Relay.Addr.String()
	secret := []byte("netlab-turn-secret-0123456789")
	rs, err := relayserver.New(relayserver.Config{
		STUNURLs:   []string{"stun:" + pub + ":3478"},
		TURNURLs:   []string{"turn:" + pub + ":3478?transport=udp"},
		TURNSecret: secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	udp, err := c.Relay.NS.ListenUDP(pub + ":3478")
	if err != nil {
		t.Fatal(err)
	}
	relayNet, err := c.Relay.NS.PionNet()
	if err != nil {
		t.Fatal(err)
	}
	turn, err := relayserver.NewTURN(relayserver.TURNConfig{
		Conn: udp, Secret: secret, RelayIP: net.IP(c.Relay.Addr.AsSlice()), RelayBind: pub, Net: relayNet,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := c.Relay.NS.Listen(pub + ":8080")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: rs.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { // owned by the test: cleanup waits
		defer close(done)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		<-done
		_ = rs.Close()
		_ = turn.Close()
	})
	return "ws://" + pub + ":8080/ws"
}

// startPeer starts a swarm peer on host h of the lab.
func startPeer(t *testing.T, h *netlab.Host, cfg swarm.Config) *swarm.Peer {
	t.Helper()
	pn, err := h.NS.PionNet()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Net, cfg.NetDial = pn, h.NS.DialContext
	if testing.Verbose() && os.Getenv("NETLAB_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("host", h.Name)
	}
	p, err := swarm.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// TestNATTraversal runs the swarm through the CDN topology with native Go
// peers: the seeders take STUN and TURN from the relay's ice answer; the
// visitor (behind a port-restricted NAT) reaches the seeder behind the
// full-cone NAT over a server-reflexive pair, and the one behind the
// symmetric NAT only through TURN. It fetches a file from each and checks
// each connection's selected candidate pair.
func TestNATTraversal(t *testing.T) {
	c, err := netlab.NewCDN()
	if errors.Is(err, netlab.ErrUnsupported) {
		t.Skipf("network lab unavailable: %v (needs root, network namespaces, veth and /dev/net/tun)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Lab.Close() })
	relayURL := startLabRelay(t, c)

	big := make([]byte, 600<<10)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	store, root := harness.BuildDAG(t, map[string][]byte{"big.bin": big, "index.html": []byte("hi")})
	site := harness.NewKey(t).Site
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	seeders := map[string]*swarm.Peer{}
	for _, h := range []*netlab.Host{c.ConeSeeder, c.SymSeeder} {
		p := startPeer(t, h, swarm.Config{RelayURL: relayURL, Site: site, Serve: store, Role: relay.RoleSeeder})
		if err := p.SetServing(ctx, true, root); err != nil {
			t.Fatal(err)
		}
		seeders[h.Name] = p
	}
	for _, tc := range []struct {
		seeder string
		check  func(exchange.Path) bool
		want   string
	}{
		// The seeder's checks often reach the visitor before its trickled
		// srflx candidate does, so the visitor may first learn that same
		// address as peer-reflexive (RFC 8445 §7.3.1.3): either type, as
		// long as it is the full-cone NAT's mapping.
		{c.ConeSeeder.Name, func(p exchange.Path) bool {
			host, _, _ := net.SplitHostPort(p.RemoteAddr)
			return !p.Relayed() && (p.Remote == "srflx" || p.Remote == "prflx") && host == c.ConeNAT.Public.String()
		}, "a pair through the full-cone NAT's mapping (srflx or prflx), not relayed"},
		{c.SymSeeder.Name, exchange.Path.Relayed, "a pair through TURN"},
	} {
		t.Run(tc.seeder, func(t *testing.T) {
			got := node.NewMemStore()
			v := startPeer(t, c.Visitor, swarm.Config{RelayURL: relayURL, Site: site, Store: got})
			if err := v.WaitReady(ctx); err != nil {
				t.Fatal(err)
			}
			id := seeders[tc.seeder].ID()
			// The relay lets a peer signal only peers it has found.
			peers, err := v.Find(ctx, 4)
			if err != nil || len(peers) != 2 {
				t.Fatalf("find: %v %v, want both seeders", peers, err)
			}
			start := time.Now()
			conn, err := v.Transport.Dial(ctx, id)
			if err != nil {
				t.Fatalf("dialing the seeder behind the %s NAT: %v", tc.seeder, err)
			}
			t.Logf("connected in %v", time.Since(start).Round(time.Millisecond))
			defer conn.Close()
			var path exchange.Path
			for _, p := range v.Transport.Paths() {
				if p.Peer == id {
					path = p
				}
			}
			t.Logf("visitor's path to %s: local %s %s, remote %s %s", tc.seeder, path.Local, path.LocalAddr, path.Remote, path.RemoteAddr)
			if !tc.check(path) {
				t.Errorf("selected pair %s→%s, want %s", path.Local, path.Remote, tc.want)
			}
			// Blocks come from this seeder alone.
			v.Fetcher.AddPeers(id)
			if _, err := v.Fetcher.Fetch(ctx, node.Request{Root: root, Path: []string{"big.bin"}, Scope: node.ScopeEntity}); err != nil {
				t.Fatal(err)
			}
			n, err := node.Resolve(ctx, got, root, []string{"big.bin"})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := node.WriteFile(ctx, got, n, 0, n.FileSize, &buf); err != nil || !bytes.Equal(buf.Bytes(), big) {
				t.Fatalf("fetched file differs: %v", err)
			}
			for _, p := range v.Transport.Paths() {
				t.Logf("fetched over: peer %.8s… local %s remote %s", p.Peer, p.Local, p.Remote)
			}
		})
	}
}
