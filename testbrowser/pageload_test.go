package testbrowser

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/hearthcdn/hearth/js/jsconfig"
)

// warmUpPage is visited before the measured pages in every run: it
// installs the service worker (swarm runs) and fills the HTTP cache with
// the docs' shared assets (both runs), as a visitor's landing page does.
const warmUpPage = "about.html"

// dwell is how long a visitor without the client reads a page; with
// the client, until the page agent has found peers (about as long).
const dwell = 500 * time.Millisecond

// loadTime is the page's navigation start → load event, in ms (Navigation
// Timing Level 2: the navigation entry's loadEventStart).
func loadTime(t testing.TB, tab context.Context) float64 {
	t.Helper()
	return eval[float64](t, tab, `new Promise((resolve) => {
	  const get = () => { const e = performance.getEntriesByType('navigation')[0]; if (e && e.loadEventStart > 0) resolve(e.loadEventStart); else setTimeout(get, 10); };
	  get();
	})`)
}

// pageLoads is one visitor's load times of the acceptance pages, in ms: a
// first round (cold: no page seen before but the warm-up page) and a
// second (warm).
type pageLoads struct{ cold, warm float64 }

// visitDocs opens a fresh browser and navigates the warm-up page, then the
// acceptance pages twice, in one tab. withWorker false blocks hearth.js:
// no service worker, every byte straight from the origin. reset is called
// once the warm-up is done.
func visitDocs(t testing.TB, o *testOrigin, withWorker bool, reset func()) pageLoads {
	t.Helper()
	b := newBrowser(t)
	tab := b.ctx
	if !withWorker {
		if _, err := chromedp.Call(tab, network.Enable, network.EnableParams{}); err != nil {
			t.Fatalf("enabling the Network domain: %v", err)
		}
		block := network.SetBlockedURLsParams{URLPatterns: []*network.BlockPattern{{URLPattern: o.URL + "/.hearth/*", Block: true}}}
		if _, err := chromedp.Call(tab, network.SetBlockedURLs, block); err != nil {
			t.Fatalf("blocking the client: %v", err)
		}
	}
	navigate(t, tab, o.URL+"/"+warmUpPage)
	if withWorker {
		waitFor(t, tab, "the service worker to control the page", `navigator.serviceWorker.controller !== null`, 30*time.Second)
		waitFor(t, tab, "the page agent to find peers", `hearth.agent.then(a => a.stats().peers >= 1)`, 30*time.Second)
	} else if eval[bool](t, tab, `navigator.serviceWorker.controller !== null || !!window.hearth`) {
		t.Fatalf("the client ran although blocked")
	}
	reset()
	var l pageLoads
	for round := range 2 {
		var sum float64
		for _, p := range acceptancePages {
			navigate(t, tab, o.URL+"/"+p)
			sum += loadTime(t, tab)
			// The visitor reads the page before the next click: long
			// enough for the new page's agent to find peers.
			if withWorker {
				waitFor(t, tab, "the page agent to find peers", `hearth.agent.then(a => a.stats().peers >= 1)`, 30*time.Second)
			} else {
				time.Sleep(dwell)
			}
		}
		if round == 0 {
			l.cold = sum
		} else {
			l.warm = sum
		}
	}
	return l
}

// BenchmarkPageLoad is issue 7's page-load benchmark: the 20 acceptance
// pages of the Python docs, navigation start → load event, summed, in one
// tab of a fresh browser, through the swarm (origin, relay, two seeders)
// and straight from the origin (hearth.js blocked: no service worker), in
// the same run; cold (each page's first visit) and warm (the second). It
// reports the ratios swarm/origin (goals: cold ≤ 1.3, warm ≤ 0.8) and the
// share of static bytes the swarm took off the origin.
//
// Run: make bench-browser, or
// go test -run '^$' -bench PageLoad -benchtime 1x ./testbrowser/
func BenchmarkPageLoad(b *testing.B) {
	needBrowser(b)
	if _, err := os.Stat(filepath.Join(pythonDocs, "index.html")); err != nil {
		b.Skipf("no Python docs at %s (apt-get install python3-doc)", pythonDocs)
	}
	files := loadDocs(b, pythonDocs)
	relayURL := startRelay(b)
	o := startOrigin(b, files, jsconfig.Config{Relays: []string{relayURL}})
	root := o.origin.Feed().Latest().Root
	var seeded atomic.Int64
	for range 2 {
		startSeeder(b, relayURL, o.site, countingGetter(copyStore(b, o.store.MemStore), &seeded), root, false)
	}
	var origin, swarm pageLoads
	var originStatic, fromSeeders int64
	b.ResetTimer()
	for range b.N {
		ol := visitDocs(b, o, false, func() {})
		sl := visitDocs(b, o, true, func() { o.resetCounts(); seeded.Store(0) })
		origin.cold, origin.warm = origin.cold+ol.cold, origin.warm+ol.warm
		swarm.cold, swarm.warm = swarm.cold+sl.cold, swarm.warm+sl.warm
		originStatic += o.gateway.Load() + o.files.Load()
		fromSeeders += seeded.Load()
	}
	b.StopTimer()
	n := float64(b.N * len(acceptancePages))
	offload := 100 * float64(fromSeeders) / float64(max(fromSeeders+originStatic, 1))
	b.ReportMetric(origin.cold/n, "origin-cold-ms/page")
	b.ReportMetric(swarm.cold/n, "swarm-cold-ms/page")
	b.ReportMetric(origin.warm/n, "origin-warm-ms/page")
	b.ReportMetric(swarm.warm/n, "swarm-warm-ms/page")
	b.ReportMetric(swarm.cold/origin.cold, "cold-ratio")
	b.ReportMetric(swarm.warm/origin.warm, "warm-ratio")
	b.ReportMetric(offload, "offload-%")
	b.ReportMetric(0, "ns/op")
	b.Logf("per page (ms): origin cold %.1f warm %.1f; swarm cold %.1f warm %.1f; swarm runs: seeders sent %d bytes, the origin %d static bytes (%.1f%% offloaded)",
		origin.cold/n, origin.warm/n, swarm.cold/n, swarm.warm/n, fromSeeders, originStatic, offload)
}
