package testbrowser

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/js/jsconfig"
)

// needLAN skips t when the namespace has no interface besides loopback:
// Chromium gathers no ICE candidate on loopback alone, so two browsers
// cannot connect to each other.
func needLAN(t testing.TB) {
	t.Helper()
	if os.Getenv(envLAN) == "" {
		t.Skip("no veth pair in the test's network namespace (ip link add … type veth failed): two browsers cannot connect over loopback alone")
	}
}

// iceCandidates are the ICE candidates a new RTCPeerConnection gathers in
// the tab (within 1.5 s).
func iceCandidates(t testing.TB, tab context.Context) []string {
	t.Helper()
	return eval[[]string](t, tab, `(async () => {
	  const pc = new RTCPeerConnection(); pc.createDataChannel('probe'); const cs = [];
	  pc.onicecandidate = (e) => { if (e.candidate && e.candidate.candidate) cs.push(e.candidate.candidate); };
	  await pc.setLocalDescription(await pc.createOffer());
	  await new Promise((r) => setTimeout(r, 1500));
	  pc.close();
	  return cs;
	})()`)
}

// TestTabSeedingBrowsers: two browsers (two profiles, two service
// workers), tab seeding on in the site's config. The first loads the page
// from a seeder and keeps its tab open; then the seeder stops. The second
// browser loads the same page: its worker gets the blocks from the first
// browser's tab over WebRTC, verified, and the origin's gateway sends
// (almost) nothing.
func TestTabSeedingBrowsers(t *testing.T) {
	needBrowser(t)
	needLAN(t)
	files, assets := pageSite(t, 20)
	relayURL := startRelay(t)
	o := startOrigin(t, files, jsconfig.Config{Relays: []string{relayURL}, TabSeeding: true, UploadKiBps: 64 << 10})
	seeder := startSeeder(t, relayURL, o.site, o.store.MemStore, o.origin.Feed().Latest().Root, false)
	total := totalSize(files, append(assets, "/index.html"))

	// The first visitor: the second load goes through the worker and fills
	// its cache; its tab announces what the cache holds.
	a := newBrowser(t)
	debugAgents(t, a.ctx)
	openTabWithAgent(t, a.ctx, o.URL+"/")
	eval[bool](t, a.ctx, `hearth.seed(true)`) // the visitor consents, for every later page
	if cs := iceCandidates(t, a.ctx); len(cs) == 0 {
		t.Fatalf("Chromium gathered no ICE candidate: two browsers cannot connect")
	} else {
		t.Logf("the first browser's host candidates: %v", cs)
	}
	navigate(t, a.ctx, o.URL+"/")
	pageStats(t, a.ctx, len(assets)+1)
	waitFor(t, a.ctx, "the first browser's cache to hold the page",
		fmt.Sprintf(`caches.open('hearth-blocks-v1').then(c => c.keys()).then(k => k.length >= %d)`, o.store.MemStore.Len()), 30*time.Second)
	waitFor(t, a.ctx, "the first browser's tab to seed", `hearth.agent.then(a => a.stats().seeding === true)`, 30*time.Second)
	if err := seeder.Close(); err != nil {
		t.Fatalf("stopping the seeder: %v", err)
	}

	// The second visitor: its agent finds only the first browser's tab.
	b := newBrowser(t)
	debugAgents(t, b.ctx)
	openTabWithAgent(t, b.ctx, o.URL+"/")
	o.resetCounts()
	tab := b.tab("second")
	debugAgents(t, tab)
	navigate(t, tab, o.URL+"/")
	st := pageStats(t, tab, len(assets)+1)
	fromOrigin := o.gateway.Load() + o.files.Load()
	up := eval[map[string]any](t, a.ctx, `hearth.agent.then(a => a.stats())`)
	t.Logf("second browser: page stats %+v; origin sent %d bytes of %d; first browser's agent: %v", st, fromOrigin, total, up)
	t.Logf("reports: %s", eval[string](t, tab, `JSON.stringify(hearth.reports().map(r => [r.url.split('/').pop(), r.peer, r.origin, r.peerFailures, r.sourceError]))`))
	checkAssets(t, tab, files, append(assets, "/"))
	if float64(fromOrigin) > 0.05*float64(total) {
		t.Errorf("the origin sent %d bytes, over 5%% of the %d page bytes; requests: %v", fromOrigin, total, o.requestLog())
	}
	if float64(st.Peer) < 0.95*float64(total) {
		t.Errorf("page stats %+v: want ≥ 95%% of %d bytes from peers (the first browser's tab)", st, total)
	}
	if out, _ := up["bytesOut"].(float64); out < 0.95*float64(total) {
		t.Errorf("the first browser's tab served %v bytes, want ≥ 95%% of %d", up["bytesOut"], total)
	}
}
