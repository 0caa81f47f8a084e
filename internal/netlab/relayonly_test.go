package netlab_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/internal/netlab"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/exchange"
	"github.com/hearthcdn/hearth/node/exchange/relaysig"
	"github.com/hearthcdn/hearth/relay"
	relayclient "github.com/hearthcdn/hearth/relay/client"
	"github.com/hearthcdn/hearth/wasm/swarm"
)

// TestRelayOnly runs seeders in relayed-only mode (swarm.Config.RelayOnly,
// as `hearth seed --relay-only`) and records every signalling message a
// visitor receives from them. The relay passes a signal's payload on as
// the sender wrote it, so these are also exactly what the relay sees of
// the seeders' signalling. The seeder behind the full-cone NAT also has a
// second LAN and an IPv6 address. None of the seeder's addresses (LAN,
// NAT-public, IPv6) may appear in any payload, every candidate must be a
// relay candidate, and the visitor must still fetch a file, over TURN.
// The same seeder without the mode shows its addresses: the capture sees
// them when they are there.
func TestRelayOnly(t *testing.T) {
	c, err := netlab.NewCDN()
	if errors.Is(err, netlab.ErrUnsupported) {
		t.Skipf("network lab unavailable: %v (needs root, network namespaces, veth and /dev/net/tun)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Lab.Close() })
	relayURL := startLabRelay(t, c)
	addExtraAddrs(t, c.ConeSeeder)

	big := make([]byte, 300<<10)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	store, root := harness.BuildDAG(t, map[string][]byte{"big.bin": big})
	site := harness.NewKey(t).Site
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	for _, tc := range []struct {
		name      string
		host      *netlab.Host
		relayOnly bool
	}{
		{"cone-direct", c.ConeSeeder, false},
		{"cone-relay-only", c.ConeSeeder, true},
		{"sym-relay-only", c.SymSeeder, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret := seederAddrs(t, tc.host)
			t.Logf("the seeder's addresses: %v", secret)
			sp := startPeer(t, tc.host, swarm.Config{RelayURL: relayURL, Site: site, Serve: store,
				Role: relay.RoleSeeder, RelayOnly: tc.relayOnly})
			if err := sp.SetServing(ctx, true, root); err != nil {
				t.Fatal(err)
			}
			defer sp.SetServing(context.Background(), false)
			v := startCapturingVisitor(t, c.Visitor, relayURL, site)
			if err := v.rc.WaitReady(ctx); err != nil {
				t.Fatal(err)
			}
			id := sp.ID()
			peers, err := v.sig.Find(ctx, site.String(), relay.MaxFind, nil)
			if err != nil || !containsString(peers, id) {
				t.Fatalf("find: %v %v, want the seeder %s", peers, err, id)
			}
			v.fetcher.AddPeers(id)
			if _, err := v.fetcher.Fetch(ctx, node.Request{Root: root, Path: []string{"big.bin"}, Scope: node.ScopeEntity}); err != nil {
				t.Fatal(err)
			}
			n, err := node.Resolve(ctx, v.store, root, []string{"big.bin"})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := node.WriteFile(ctx, v.store, n, 0, n.FileSize, &buf); err != nil || !bytes.Equal(buf.Bytes(), big) {
				t.Fatalf("fetched file differs: %v", err)
			}
			var path exchange.Path
			for _, p := range v.tr.Paths() {
				if p.Peer == id {
					path = p
				}
			}
			t.Logf("visitor's path: local %s %s, remote %s %s", path.Local, path.LocalAddr, path.Remote, path.RemoteAddr)

			msgs := v.from(id)
			if len(msgs) == 0 {
				t.Fatal("no signalling message from the seeder captured")
			}
			var leaks []string
			var sdps, cands int
			for _, raw := range msgs {
				for _, a := range secret {
					if bytes.Contains(raw, []byte(a)) {
						leaks = append(leaks, a)
					}
				}
				var m exchange.SignalMsg
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatalf("captured payload %q: %v", raw, err)
				}
				if m.SDP != "" {
					sdps++
				}
				var lines []string
				if m.Candidate != nil && m.Candidate.Candidate != "" {
					cands++
					lines = append(lines, m.Candidate.Candidate)
				}
				for _, l := range strings.Split(m.SDP, "\r\n") {
					if strings.HasPrefix(l, "a=candidate:") {
						lines = append(lines, l)
					}
				}
				for _, l := range lines {
					if tc.relayOnly {
						t.Logf("the seeder's candidate: %s", l)
					}
					if f := strings.Fields(l); tc.relayOnly && (len(f) < 8 || f[7] != "relay" || f[4] != c.Relay.Addr.String()) {
						t.Errorf("a relayed-only seeder sent candidate %q, want only relay candidates on the relay's address %s", l, c.Relay.Addr)
					}
				}
			}
			t.Logf("captured %d messages from the seeder: %d descriptions, %d candidates", len(msgs), sdps, cands)
			if !tc.relayOnly {
				if !containsString(leaks, tc.host.Addr.String()) {
					t.Fatalf("the seeder's LAN address %s not seen without relay-only: the capture misses what it should check", tc.host.Addr)
				}
				return
			}
			if len(leaks) > 0 {
				t.Errorf("the visitor (and the relay) saw the relayed-only seeder's addresses %v", leaks)
			}
			if !path.Relayed() || path.Remote != "relay" {
				t.Errorf("selected pair %s→%s, want the seeder's relay candidate", path.Local, path.Remote)
			}
			if host, _, _ := net.SplitHostPort(path.RemoteAddr); host != c.Relay.Addr.String() {
				t.Errorf("the visitor reaches the seeder at %s, want the relay's address %s", path.RemoteAddr, c.Relay.Addr)
			}
		})
	}
}

// capturingVisitor is a fetching peer built from its parts, so that the
// test sees every signal payload the relay delivers to it.
type capturingVisitor struct {
	rc      *relayclient.Client
	sig     *relaysig.Relay
	tr      *exchange.Transport
	fetcher *exchange.Fetcher
	store   *node.MemStore

	mu  sync.Mutex
	got map[string][][]byte // by sender
}

func (v *capturingVisitor) from(peer string) [][]byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.got[peer]
}

func startCapturingVisitor(t *testing.T, h *netlab.Host, relayURL string, site node.SiteID) *capturingVisitor {
	t.Helper()
	pn, err := h.NS.PionNet()
	if err != nil {
		t.Fatal(err)
	}
	v := &capturingVisitor{store: node.NewMemStore(), got: map[string][][]byte{}}
	if v.rc, err = relayclient.New(relayclient.Config{URL: relayURL, NetDial: h.NS.DialContext}); err != nil {
		t.Fatal(err)
	}
	v.sig = relaysig.New(v.rc, nil)
	if v.tr, err = exchange.NewTransport(exchange.TransportConfig{Signaler: v.sig, ICESource: relaysig.ICESource(v.rc), Net: pn}); err != nil {
		t.Fatal(err)
	}
	if v.fetcher, err = exchange.NewFetcher(exchange.FetcherConfig{Site: site.String(), Dialer: v.tr, Finder: v.sig, Store: v.store}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // owned by the test: cleanup waits
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case s, ok := <-v.rc.Signals():
				if !ok {
					return
				}
				if s.Err != nil {
					continue
				}
				v.mu.Lock()
				v.got[s.Peer.String()] = append(v.got[s.Peer.String()], append([]byte(nil), s.Payload...))
				v.mu.Unlock()
				var m exchange.SignalMsg
				if json.Unmarshal(s.Payload, &m) == nil {
					v.tr.HandleSignal(s.Peer.String(), m)
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = v.fetcher.Close()
		_ = v.tr.Close()
		_ = v.rc.Close()
		cancel()
		<-done
	})
	return v
}

// addExtraAddrs gives h a second LAN (10.77.0.2/24) and an IPv6 address
// (fd00:77::2/64) on another interface, as a member's machine with more
// than one network has.
func addExtraAddrs(t *testing.T, h *netlab.Host) {
	t.Helper()
	err := h.NS.Do(func() error {
		la := netlink.NewLinkAttrs()
		la.Name = "lan2"
		// A veth pair with both ends here: this kernel has veth, not dummy.
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "lan2p"}); err != nil {
			return err
		}
		if p, err := netlink.LinkByName("lan2p"); err != nil || netlink.LinkSetUp(p) != nil {
			return fmt.Errorf("lan2p: %v", err)
		}
		// The lab turns IPv6 off in every namespace; on for this link.
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/lan2/disable_ipv6", []byte("0"), 0o644); err != nil {
			return err
		}
		l, err := netlink.LinkByName("lan2")
		if err != nil {
			return err
		}
		for _, a := range []string{"10.77.0.2/24", "fd00:77::2/64"} {
			addr, err := netlink.ParseAddr(a)
			if err != nil {
				return err
			}
			addr.Flags |= 0x02 // IFA_F_NODAD: usable at once
			if err := netlink.AddrAdd(l, addr); err != nil {
				return err
			}
		}
		return netlink.LinkSetUp(l)
	})
	if err != nil {
		t.Fatalf("adding addresses to %s: %v", h.Name, err)
	}
}

// seederAddrs lists every address of h but loopback, and its NAT's public
// address, in text form.
func seederAddrs(t *testing.T, h *netlab.Host) []string {
	t.Helper()
	out := []string{h.Public.String()}
	err := h.NS.Do(func() error {
		addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if ok && !ip.Unmap().IsLoopback() {
				out = append(out, ip.Unmap().String())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
