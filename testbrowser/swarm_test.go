package testbrowser

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/js/jsconfig"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/exchange"
	"github.com/hearthcdn/hearth/relay"
	relayserver "github.com/hearthcdn/hearth/relay/server"
	"github.com/hearthcdn/hearth/wasm/swarm"
)

// startRelay runs a relay and returns its WebSocket URL.
func startRelay(t testing.TB) string {
	t.Helper()
	rs, err := relayserver.New(relayserver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rs.Handler())
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		_ = rs.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

// startSeeder runs a native seeder of site serving store (over WebRTC on
// loopback, signalled through the relay). A lying seeder corrupts the block
// data it sends.
func startSeeder(t testing.TB, relayURL string, site node.SiteID, store node.Getter, root cid.Cid, lying bool) *swarm.Peer {
	t.Helper()
	cfg := swarm.Config{RelayURL: relayURL, Site: site, Serve: store, Role: relay.RoleSeeder, LoopbackOnly: true}
	if lying {
		cfg.WrapHandler = func(h exchange.Handler) exchange.Handler { return lyingHandler{h} }
	}
	p, err := swarm.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.SetServing(ctx, true, root); err != nil {
		t.Fatal(err)
	}
	return p
}

// lyingHandler serves connections whose block data has its last byte
// flipped: blocks that no longer match their CIDs, in well-formed messages.
type lyingHandler struct{ exchange.Handler }

func (h lyingHandler) ServeConn(ctx context.Context, peer string, c exchange.Conn) error {
	return h.Handler.ServeConn(ctx, peer, lyingConn{c})
}

// The message types lyingConn rewrites (node/exchange/README.md): BLOCK
// and MORE end with block data; a BATCH holds messages, each after its
// uvarint length.
const (
	wireBlock = 3
	wireMore  = 4
	wireBatch = 9
)

type lyingConn struct{ exchange.Conn }

func (c lyingConn) WriteMessage(ctx context.Context, p []byte) error {
	q := append([]byte(nil), p...)
	if len(q) > 0 && q[0] == wireBatch {
		for b := q[1:]; len(b) > 0; {
			n, k := binary.Uvarint(b)
			if k <= 0 || n > uint64(len(b)-k) {
				break // malformed: the real reader rejects it
			}
			corruptData(b[k : k+int(n)])
			b = b[k+int(n):]
		}
	} else {
		corruptData(q)
	}
	return c.Conn.WriteMessage(ctx, q)
}

// corruptData flips the last byte of m's data if m is a BLOCK (type, id,
// CID with its length, size, data) or a MORE (type, id, data) with data.
func corruptData(m []byte) {
	if len(m) == 0 || (m[0] != wireBlock && m[0] != wireMore) {
		return
	}
	b := m[1:]
	fields := 1 // id
	if m[0] == wireBlock {
		fields = 3 // id, CID length, size
	}
	for i := range fields {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return
		}
		b = b[k:]
		if m[0] == wireBlock && i == 1 { // the CID itself
			if v > uint64(len(b)) {
				return
			}
			b = b[v:]
		}
	}
	if len(b) > 0 {
		b[len(b)-1] ^= 0x01
	}
}

// openTabWithAgent loads the site in a tab and waits for its agent to
// know peers: the tab the service worker will ask for blocks.
func openTabWithAgent(t testing.TB, tab context.Context, url string) {
	t.Helper()
	navigate(t, tab, url)
	waitFor(t, tab, "the service worker to control the page", `navigator.serviceWorker.controller !== null`, 30*time.Second)
	waitFor(t, tab, "the page agent to find peers", `hearth.agent.then(a => a.stats().peers >= 1)`, 30*time.Second)
}

// TestSwarmSecondLoad: a page of 20 assets; a first tab installs the
// worker and runs an agent connected to a seeder; a second tab's load goes
// through the worker, which asks that agent for the blocks: at least 95%
// of the asset bytes come from the seeder, counted at the origin.
func TestSwarmSecondLoad(t *testing.T) {
	needBrowser(t)
	files, assets := pageSite(t, 20)
	relayURL := startRelay(t)
	o := startOrigin(t, files, jsconfig.Config{Relays: []string{relayURL}})
	startSeeder(t, relayURL, o.site, o.store.MemStore, o.origin.Feed().Latest().Root, false)
	b := newBrowser(t)
	openTabWithAgent(t, b.ctx, o.URL+"/")

	o.resetCounts()
	tab := b.tab("tab1")
	start := time.Now()
	navigate(t, tab, o.URL+"/")
	st := pageStats(t, tab, len(assets)+1)
	fromOrigin := o.gateway.Load() + o.files.Load()
	total := totalSize(files, append(assets, "/index.html"))
	t.Logf("second load: %v; page stats %+v; origin sent %d bytes (gateway %d, files %d) of %d",
		time.Since(start).Round(time.Millisecond), st, fromOrigin, o.gateway.Load(), o.files.Load(), total)
	t.Logf("reports: %s", eval[string](t, tab, `JSON.stringify(hearth.reports().map(r => [r.url.split('/').pop(), r.peer, r.origin, r.headersMs|0, r.doneMs|0]))`))
	if float64(fromOrigin) > 0.05*float64(total) {
		t.Errorf("the origin sent %d bytes, over 5%% of the %d asset bytes; requests: %v", fromOrigin, total, o.requestLog())
	}
	if float64(st.Peer) < 0.95*float64(total) {
		t.Errorf("page stats %+v: want ≥ 95%% of %d bytes from peers", st, total)
	}
	checkAssets(t, tab, files, append(assets, "/"))
}

// TestSwarmCorruptSeeder: with a lying seeder beside an honest one, the
// page gets every byte right; with only a lying seeder, the worker falls
// back to the origin's gateway.
func TestSwarmCorruptSeeder(t *testing.T) {
	needBrowser(t)
	files, assets := pageSite(t, 20)
	relayURL := startRelay(t)
	// No freshness bound: the navigation right after a republish shows it
	// (TestSWRecordPush covers navigations within a bound).
	o := startOrigin(t, files, jsconfig.Config{Relays: []string{relayURL}, MaxStaleMS: -1})
	root := o.origin.Feed().Latest().Root
	liar := startSeeder(t, relayURL, o.site, o.store.MemStore, root, true)
	b := newBrowser(t)
	openTabWithAgent(t, b.ctx, o.URL+"/")

	t.Run("only a liar", func(t *testing.T) {
		o.resetCounts()
		tab := b.tab("tab1")
		navigate(t, tab, o.URL+"/")
		st := pageStats(t, tab, len(assets)+1)
		t.Logf("stats %+v; origin gateway sent %d bytes", st, o.gateway.Load())
		checkAssets(t, tab, files, append(assets, "/"))
		if st.Origin == 0 || st.PeerFailures == 0 {
			t.Errorf("stats %+v: want peer failures and bytes from the origin", st)
		}
	})
	_ = liar.Close()

	t.Run("a liar and an honest seeder", func(t *testing.T) {
		files2, assets2 := pageSiteAt(t, 20, "v2/") // new content: nothing cached
		rec := o.publish(files2)
		startSeeder(t, relayURL, o.site, o.store.MemStore, rec.Root, true)
		startSeeder(t, relayURL, o.site, o.store.MemStore, rec.Root, false)
		waitFor(t, b.ctx, "the agent to find the new seeders", `hearth.agent.then(a => a.stats().peers >= 2)`, 30*time.Second)
		o.resetCounts()
		tab := b.tab("tab2")
		navigate(t, tab, o.URL+"/v2/")
		st := pageStats(t, tab, len(assets2)+1)
		total := totalSize(files2, assets2)
		t.Logf("stats %+v; origin gateway sent %d bytes of %d", st, o.gateway.Load(), total)
		checkAssets(t, tab, files2, append(assets2, "/v2/"))
		if float64(o.gateway.Load()+o.files.Load()) > 0.05*float64(total) {
			t.Errorf("the origin sent %d bytes of %d: the honest seeder should have served", o.gateway.Load()+o.files.Load(), total)
		}
	})
}

// TestTabSeeding: a visitor who opted in (hearth.seed(true)) announces
// their tab and serves what their worker cached, with an upload cap, to
// another peer, here a native one; then opts out and is withdrawn.
// Browser to browser: TestTabSeedingBrowsers, TestAcceptancePeers.
func TestTabSeeding(t *testing.T) {
	needBrowser(t)
	files, assets := pageSite(t, 20)
	relayURL := startRelay(t)
	o := startOrigin(t, files, jsconfig.Config{Relays: []string{relayURL}, TabSeeding: true})
	root := o.origin.Feed().Latest().Root

	// The visitor's second load fills the worker's cache from the gateway;
	// then they opt in.
	b := newBrowser(t)
	debugAgents(t, b.ctx)
	loadControlled(t, b.ctx, o.URL+"/")
	navigate(t, b.ctx, o.URL+"/")
	pageStats(t, b.ctx, len(assets)+1)
	waitFor(t, b.ctx, "the cache to be written", `caches.open('hearth-blocks-v1').then(c => c.keys()).then(k => k.length >= 25)`, 30*time.Second)
	eval[bool](t, b.ctx, `hearth.agent.then(a => { hearth.seed(true); return true; })`)

	// A peer that only fetches finds the tab and gets the site from it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := node.NewMemStore()
	peer, err := swarm.Start(swarm.Config{RelayURL: relayURL, Site: o.site, Store: got, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	var ids []string
	for ctx.Err() == nil && len(ids) == 0 {
		ids, _ = peer.Find(ctx, 4)
		time.Sleep(100 * time.Millisecond)
	}
	if len(ids) != 1 {
		t.Fatalf("find: %v", ids)
	}
	for _, p := range assets {
		segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
		if _, err := peer.Fetcher.Fetch(ctx, node.Request{Root: root, Path: segs, Scope: node.ScopeEntity}); err != nil {
			t.Fatalf("fetching %s from the tab: %v", p, err)
		}
		n, err := node.Resolve(ctx, got, root, segs)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := node.WriteFile(ctx, got, n, 0, n.FileSize, &buf); err != nil || !bytes.Equal(buf.Bytes(), files[strings.Join(segs, "/")]) {
			t.Fatalf("%s from the tab differs: %v", p, err)
		}
	}
	up := eval[map[string]any](t, b.ctx, `hearth.agent.then(a => a.stats())`)
	t.Logf("tab agent: %v", up)
	if out, _ := up["bytesOut"].(float64); out < float64(totalSize(files, assets)) {
		t.Errorf("the tab served %v bytes, want ≥ %d", up["bytesOut"], totalSize(files, assets))
	}
	// Seeding off: the tab withdraws.
	eval[bool](t, b.ctx, `hearth.agent.then(a => { hearth.seed(false); return true; })`)
	waitFor(t, b.ctx, "seeding off", `hearth.agent.then(a => !a.stats().seeding)`, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ids, err := peer.Find(ctx, 4)
		if err == nil && len(ids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tab is still announced: %v %v", ids, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
