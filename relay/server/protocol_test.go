package relayserver_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
	relayclient "github.com/hearthcdn/hearth/relay/client"
	relayserver "github.com/hearthcdn/hearth/relay/server"
)

func TestProtocol(t *testing.T) { forModes(t, testProtocol) }

func testProtocol(t *testing.T) {
	r := startRelay(t, relayserver.Config{STUNURLs: []string{"stun:127.0.0.1:3478"}}, nil)
	seeder := newClient(t, r, nil)
	tab := newClient(t, r, nil)
	asker := newClient(t, r, nil)

	site := siteOf(newKey(t))
	root := testCID(t, "root-1")
	ctx := ctxT(t)
	if err := seeder.Announce(ctx, relayclient.Announcement{Role: relay.RoleSeeder, Capacity: 10,
		Sites: []relayclient.SiteRoots{{Site: site, Roots: []cid.Cid{root}}}}); err != nil {
		t.Fatal(err)
	}
	// The tab announced later, so it is "newer", but seeders come first.
	if err := tab.Announce(ctx, relayclient.Announcement{Role: relay.RoleTab, Capacity: 3,
		Sites: []relayclient.SiteRoots{{Site: site}}}); err != nil {
		t.Fatal(err)
	}

	peers, err := asker.Find(ctx, site, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 || peers[0].ID != seeder.ID() || peers[1].ID != tab.ID() {
		t.Fatalf("find: %+v", peers)
	}
	if peers[0].Role != relay.RoleSeeder || peers[0].Capacity != 10 || len(peers[0].Roots) != 1 || !peers[0].Roots[0].Equals(root) {
		t.Fatalf("seeder entry: %+v", peers[0])
	}
	if peers[1].Role != relay.RoleTab || peers[1].Capacity != 3 || len(peers[1].Roots) != 0 {
		t.Fatalf("tab entry: %+v", peers[1])
	}

	// The asker offers, the seeder answers, then trickled candidates in
	// both directions.
	offer := json.RawMessage(`{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}`)
	if err := asker.Signal(ctx, seeder.ID(), offer); err != nil {
		t.Fatal(err)
	}
	got := recvSignal(t, seeder)
	if got.Err != nil || got.Peer != asker.ID() {
		t.Fatalf("seeder got %+v", got)
	}
	var v map[string]string
	if err := json.Unmarshal(got.Payload, &v); err != nil || v["type"] != "offer" || !strings.HasPrefix(v["sdp"], "v=0\r\n") {
		t.Fatalf("payload %s: %v", got.Payload, err)
	}
	roundTrip(t, seeder, asker, "answer")
	roundTrip(t, seeder, asker, "candidate-1")
	roundTrip(t, asker, seeder, "candidate-2")
	// The tab, found too, may signal the asker first.
	roundTrip(t, tab, asker, "tab-first")

	// Announcing nothing withdraws.
	if err := tab.Announce(ctx, relayclient.Announcement{Role: relay.RoleTab}); err != nil {
		t.Fatal(err)
	}
	if peers, err := asker.Find(ctx, site, 5, nil); err != nil || len(peers) != 1 || peers[0].ID != seeder.ID() {
		t.Fatalf("find after withdraw: %v %+v", err, peers)
	}

	// ICE servers without TURN: STUN only.
	ice, err := asker.ICEServers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ice.Servers) != 1 || ice.Servers[0].URLs[0] != "stun:127.0.0.1:3478" || ice.Servers[0].Username != "" || !ice.Expires.IsZero() {
		t.Fatalf("ice: %+v", ice)
	}

	// A disconnected peer's announcements are withdrawn.
	if err := seeder.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		peers, err := asker.Find(ctx, site, 5, nil)
		return err == nil && len(peers) == 0
	})
	if n := r.counter("hearth_relay_signals_relayed_total", ""); n != 5 {
		t.Errorf("relayed %v signals", n)
	}
}

// waitFor polls cond, each poll a round trip to the relay, bounded by count
// and time.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for i := 0; i < 10000 && time.Now().Before(deadline); i++ {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached")
}

func TestFindSpreadsLoad(t *testing.T) { forModes(t, testFindSpreadsLoad) }

func testFindSpreadsLoad(t *testing.T) {
	r := startRelay(t, relayserver.Config{}, nil)
	ctx := ctxT(t)
	site := siteOf(newKey(t))
	announce := func(c *relayclient.Client, role relay.Role, capacity int) {
		t.Helper()
		if err := c.Announce(ctx, relayclient.Announcement{Role: role, Capacity: capacity,
			Sites: []relayclient.SiteRoots{{Site: site}}}); err != nil {
			t.Fatal(err)
		}
	}
	var seeders []*relayclient.Client
	for range 3 {
		c := newClient(t, r, nil)
		announce(c, relay.RoleSeeder, 5)
		seeders = append(seeders, c)
	}
	tab := newClient(t, r, nil)
	announce(tab, relay.RoleTab, 5)
	full := newClient(t, r, nil)
	announce(full, relay.RoleSeeder, 0) // capacity 0: never handed out
	asker := newClient(t, r, nil)
	announce(asker, relay.RoleSeeder, 5) // the asker is never its own answer

	ids := func(ps []relayclient.Peer) []node.SiteID {
		var out []node.SiteID
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	seen := map[node.SiteID]int{}
	for range 6 {
		ps, err := asker.Find(ctx, site, 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 2 {
			t.Fatalf("find: %v", ids(ps))
		}
		for _, p := range ps {
			if p.ID == asker.ID() || p.ID == full.ID() || p.ID == tab.ID() {
				t.Fatalf("find returned %s (asker %s, full %s, tab %s)", p.ID, asker.ID(), full.ID(), tab.ID())
			}
			seen[p.ID]++
		}
	}
	// 12 hand-outs over 3 seeders, least recently handed out first: 4 each.
	for _, s := range seeders {
		if seen[s.ID()] != 4 {
			t.Fatalf("hand-outs: %v", seen)
		}
	}
	// Excluding every seeder leaves the tab.
	ps, err := asker.Find(ctx, site, 5, []node.SiteID{seeders[0].ID(), seeders[1].ID(), seeders[2].ID()})
	if err != nil || len(ps) != 1 || ps[0].ID != tab.ID() {
		t.Fatalf("find with exclude: %v %v", err, ids(ps))
	}
	// Nobody serves an unknown site.
	ps, err = asker.Find(ctx, siteOf(newKey(t)), 5, nil)
	if err != nil || len(ps) != 0 {
		t.Fatalf("find unknown site: %v %v", err, ids(ps))
	}
	// n is checked.
	if _, err := asker.Find(ctx, site, 0, nil); !errors.Is(err, relay.ErrBadMessage) {
		t.Fatalf("find n=0: %v", err)
	}
}

func TestSignalNeedsFind(t *testing.T) { forModes(t, testSignalNeedsFind) }

func testSignalNeedsFind(t *testing.T) {
	r := startRelay(t, relayserver.Config{}, nil)
	a := newClient(t, r, nil)
	b := newClient(t, r, nil)
	ctx := ctxT(t)

	// b is connected, but nobody found anybody.
	if err := a.Signal(ctx, b.ID(), json.RawMessage(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	s := recvSignal(t, a)
	if s.Peer != b.ID() || !errors.Is(s.Err, relay.ErrNotIntroduced) {
		t.Fatalf("unrelated peer: %+v", s)
	}
	// Nobody has this key.
	stranger := siteOf(newKey(t))
	if err := a.Signal(ctx, stranger, json.RawMessage(`{"x":2}`)); err != nil {
		t.Fatal(err)
	}
	s = recvSignal(t, a)
	if s.Peer != stranger || !errors.Is(s.Err, relay.ErrUnknownPeer) {
		t.Fatalf("unknown peer: %+v", s)
	}
	// b got nothing meanwhile; after a finds b, both directions work.
	introduce(t, a, b)
	roundTrip(t, b, a, "b-first")
	roundTrip(t, a, b, "a-second")
	// A payload that is not JSON never leaves the client.
	if err := a.Signal(ctx, b.ID(), json.RawMessage(`{nope`)); !errors.Is(err, relay.ErrBadMessage) {
		t.Fatalf("bad payload: %v", err)
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	r := startRelay(t, relayserver.Config{}, nil)
	newClient(t, r, nil)
	base := "http://" + r.ln.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{"hearth_relay_connections 1", "hearth_relay_peers 1", `hearth_relay_messages_received_total{type="hello"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// A plain GET on the WebSocket endpoint is refused, not crashed.
	if code, _ := get("/ws"); code != http.StatusUpgradeRequired {
		t.Errorf("plain GET /ws: %d", code)
	}
}
