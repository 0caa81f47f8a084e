package testbrowser

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// dwell is how long a visitor without the client reads a page; with
// the client, until the page agent has found peers (about as long).
const dwell = 500 * time.Millisecond

// navTiming is the page's navigation entry (Navigation Timing Level 2),
// in ms from the navigation's start: the first and last byte of the HTML,
// and the load event.
type navTiming struct {
	ResponseStart float64 `json:"responseStart"`
	ResponseEnd   float64 `json:"responseEnd"`
	Load          float64 `json:"loadEventStart"`
}

// loadTime returns the page's navigation timing once its load event has
// fired.
func loadTime(t testing.TB, tab context.Context) navTiming {
	t.Helper()
	return eval[navTiming](t, tab, `new Promise((resolve) => {
	  const get = () => { const e = performance.getEntriesByType('navigation')[0]; if (e && e.loadEventStart > 0) resolve(e.toJSON()); else setTimeout(get, 10); };
	  get();
	})`)
}

// pageLoad is one page's load times, in ms, and the cold and warm
// navigations' timings.
type pageLoad struct {
	page             string
	cold, warm       float64
	coldNav, warmNav navTiming
}

// pageLoads is one visitor's load times of a site's pages, in ms, summed:
// a first round (cold: no page seen before but the warm-up page) and a
// second (warm); and each page's.
type pageLoads struct {
	cold, warm float64
	pages      []pageLoad
}

// slowest returns the n pages whose cold loads took longest.
func (l pageLoads) slowest(n int) []pageLoad {
	ps := append([]pageLoad(nil), l.pages...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].cold > ps[j].cold })
	return ps[:min(n, len(ps))]
}

// visitDocs opens a fresh browser and navigates the site's warm-up page,
// then its pages twice, in one tab. withWorker false blocks hearth.js: no
// service worker, every byte straight from the origin. reset is called
// once the warm-up is done. The browser is stopped before it returns.
func (s *docSwarm) visitDocs(t testing.TB, withWorker bool, reset func()) pageLoads {
	t.Helper()
	b := newBrowser(t)
	defer b.stop()
	tab := b.ctx
	o := s.o
	if !withWorker {
		if _, err := chromedp.Call(tab, network.Enable, network.EnableParams{}); err != nil {
			t.Fatalf("enabling the Network domain: %v", err)
		}
		block := network.SetBlockedURLsParams{URLPatterns: []*network.BlockPattern{{URLPattern: o.URL + "/.hearth/*", Block: true}}}
		if _, err := chromedp.Call(tab, network.SetBlockedURLs, block); err != nil {
			t.Fatalf("blocking the client: %v", err)
		}
	}
	navigate(t, tab, o.URL+"/"+s.site.warmUp)
	if withWorker {
		waitFor(t, tab, "the service worker to control the page", `navigator.serviceWorker.controller !== null`, 30*time.Second)
		waitFor(t, tab, "the page agent to find peers", `hearth.agent.then(a => a.stats().peers >= 1)`, 30*time.Second)
	} else if eval[bool](t, tab, `navigator.serviceWorker.controller !== null || !!window.hearth`) {
		t.Fatalf("the client ran although blocked")
	}
	reset()
	l := pageLoads{pages: make([]pageLoad, len(s.site.pages))}
	for round := range 2 {
		for i, p := range s.site.pages {
			navigate(t, tab, o.URL+"/"+p)
			nt := loadTime(t, tab)
			l.pages[i].page = p
			if round == 0 {
				l.cold += nt.Load
				l.pages[i].cold, l.pages[i].coldNav = nt.Load, nt
			} else {
				l.warm += nt.Load
				l.pages[i].warm, l.pages[i].warmNav = nt.Load, nt
			}
			// The visitor reads the page before the next click: long
			// enough for the new page's agent to find peers.
			if withWorker {
				waitFor(t, tab, "the page agent to find peers", `hearth.agent.then(a => a.stats().peers >= 1)`, 30*time.Second)
			} else {
				time.Sleep(dwell)
			}
		}
	}
	return l
}

// measurePageLoads loads the site's pages straight from the origin
// (hearth.js blocked: no service worker), then through the swarm, each in
// a fresh browser, one after the other. The counts are reset once the
// swarm run's warm-up page is done: afterwards they hold what that run
// took from the origin and the seeders.
func (s *docSwarm) measurePageLoads(t testing.TB) (origin, swarm pageLoads) {
	t.Helper()
	origin = s.visitDocs(t, false, func() {})
	swarm = s.visitDocs(t, true, s.resetCounts)
	return origin, swarm
}

// BenchmarkPageLoad is issue 7's page-load benchmark, per doc site: the
// site's acceptance pages, navigation start → load event, summed, in one
// tab of a fresh browser, through the swarm (origin, relay, two seeders)
// and straight from the origin (hearth.js blocked: no service worker), in
// the same run; cold (each page's first visit) and warm (the second). It
// reports the ratios swarm/origin (goals: cold ≤ 1.3, warm ≤ 0.8) and the
// share of static bytes the swarm took off the origin.
//
// Run: make bench-browser, or
// go test -run '^$' -bench PageLoad -benchtime 1x ./testbrowser/
func BenchmarkPageLoad(b *testing.B) {
	for _, site := range []docSite{pythonSite, rustSite} {
		b.Run(site.name, func(b *testing.B) { benchPageLoad(b, site) })
	}
}

func benchPageLoad(b *testing.B, site docSite) {
	needBrowser(b)
	site.need(b)
	s := startDocSwarm(b, site, nil)
	var origin, swarm pageLoads
	var originStatic, fromSeeders int64
	b.ResetTimer()
	for range b.N {
		ol, sl := s.measurePageLoads(b)
		origin.cold, origin.warm = origin.cold+ol.cold, origin.warm+ol.warm
		swarm.cold, swarm.warm = swarm.cold+sl.cold, swarm.warm+sl.warm
		originStatic += s.originStatic()
		fromSeeders += s.seeded.Load()
	}
	b.StopTimer()
	n := float64(b.N * len(site.pages))
	offload := 100 * float64(fromSeeders) / float64(max(fromSeeders+originStatic, 1))
	b.ReportMetric(origin.cold/n, "origin-cold-ms/page")
	b.ReportMetric(swarm.cold/n, "swarm-cold-ms/page")
	b.ReportMetric(origin.warm/n, "origin-warm-ms/page")
	b.ReportMetric(swarm.warm/n, "swarm-warm-ms/page")
	b.ReportMetric(swarm.cold/origin.cold, "cold-ratio")
	b.ReportMetric(swarm.warm/origin.warm, "warm-ratio")
	b.ReportMetric(offload, "offload-%")
	b.ReportMetric(0, "ns/op")
	b.Logf("PAGELOAD %s cold %.2f warm %.2f; per page (ms): origin cold %.1f warm %.1f; swarm cold %.1f warm %.1f; swarm runs: seeders sent %d bytes, the origin %d static bytes (%.1f%% offloaded)",
		site.name, swarm.cold/origin.cold, swarm.warm/origin.warm, origin.cold/n, origin.warm/n, swarm.cold/n, swarm.warm/n, fromSeeders, originStatic, offload)
}
