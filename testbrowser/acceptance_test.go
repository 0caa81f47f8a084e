package testbrowser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/hearthcdn/hearth/js/inject"
	"github.com/hearthcdn/hearth/js/jsconfig"
	"github.com/hearthcdn/hearth/node"
)

// freshTabPages are pages over one chunk, not visited before, each
// navigated in a new tab.
var freshTabPages = []string{"library/typing.html", "library/argparse.html", "library/socket.html", "library/ssl.html"}

// navReport returns the worker's report on the tab's navigation, as JSON
// ("" when the page did not receive it).
func navReport(t testing.TB, tab context.Context) string {
	t.Helper()
	s, err := evalErr[string](tab, `(async () => {
	  for (let i = 0; i < 20; i++) {
	    const r = window.hearth && hearth.reports ? hearth.reports().find(r => r.url === location.href) : null;
	    if (r) return JSON.stringify({peer: r.peer, origin: r.origin, cache: r.cache, peerFailures: r.peerFailures, sourceError: r.sourceError, passthrough: r.passthrough});
	    await new Promise(res => setTimeout(res, 25));
	  }
	  return '';
	})()`)
	if err != nil {
		return err.Error()
	}
	if s == "" {
		return "(no report: hearth.js not loaded)"
	}
	return s
}

// byKind is the sum of the worker's reports of a page, in bytes.
type byKind struct{ Peer, Origin, Cache int64 }

// workerSums adds up the worker's reports on the page's responses.
func workerSums(t testing.TB, tab context.Context) byKind {
	t.Helper()
	return eval[byKind](t, tab, `(hearth.reports ? hearth.reports() : []).reduce((s, r) => ({Peer: s.Peer + (r.peer|0), Origin: s.Origin + (r.origin|0), Cache: s.Cache + (r.cache|0)}), {Peer: 0, Origin: 0, Cache: 0})`)
}

// The large file read with Range requests, and the seeks.
const (
	largeFile     = "_media/hearth-seek-test.webm"
	largeFileSize = 60 << 20
	seekLength    = 1 << 20
)

// seekOffsets are where a player seeking through a file of n bytes reads:
// the start, spread positions, the last bytes.
func seekOffsets(n int) []int {
	return []int{0, n / 2, n / 7, 3 * n / 4, n / 3, n - 1000, 5 * n / 6}
}

// The page republished while the browser is open, and what changes.
const (
	republishedPage   = "library/json.html"
	republishedMarker = `<p id="hearth-republished">This page was republished.</p>`
)

// replicate copies the blocks of src that each replica lacks: what
// seeders' replicators do on a new root.
func replicate(t testing.TB, src *node.MemStore, replicas []*node.MemStore) {
	t.Helper()
	ctx := context.Background()
	for c, err := range src.AllKeys(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range replicas {
			if ok, _ := r.Has(ctx, c); ok {
				continue
			}
			b, err := src.Get(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Put(ctx, c, b); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// countingGetter counts the bytes of the blocks a seeder reads to serve.
func countingGetter(g node.Getter, n *atomic.Int64) node.Getter {
	return node.GetterFunc(func(ctx context.Context, c cid.Cid) ([]byte, error) {
		b, err := g.Get(ctx, c)
		n.Add(int64(len(b)))
		return b, err
	})
}

// copyStore returns a new store holding every block of src: a seeder's own
// replica, which outlives the origin.
func copyStore(t testing.TB, src *node.MemStore) *node.MemStore {
	t.Helper()
	ctx := context.Background()
	dst := node.NewMemStore()
	for c, err := range src.AllKeys(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		b, err := src.Get(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := dst.Put(ctx, c, b); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// jsResourceErrors records, from the document's start, the elements whose
// loading failed (capture-phase error events).
const jsResourceErrors = `window.__hearthLoadErrors = [];
addEventListener('error', (e) => { const el = e.target; if (el && el !== window) window.__hearthLoadErrors.push(String(el.src || el.href || el.tagName)); }, true);`

// pageCheck is what the page says about itself after its load event.
type pageCheck struct {
	Title      string   `json:"title"`
	H1         string   `json:"h1"`
	MainSame   bool     `json:"mainSame"`
	MainDiff   string   `json:"mainDiff"` // where the main texts part, when not the same
	WantTitle  string   `json:"wantTitle"`
	WantH1     string   `json:"wantH1"`
	LoadErrors []string `json:"loadErrors"`
	BadImages  []string `json:"badImages"`
	BadSheets  []string `json:"badSheets"`
	Resources  []string `json:"resources"` // same-origin paths, with status
}

// jsPageCheck compares the live document with the origin's HTML (parsed
// by DOMParser from the bytes given) and lists the page's subresources.
// The main text is compared on the main part (Sphinx's div[role=main],
// rustdoc's #main-content, mdBook's main, else the body) with the elements
// the docs' own scripts add or fill (copy buttons, rustdoc's lists of
// implementors loaded by script) removed from both. Stylesheets the docs'
// scripts disable (alternate themes) are not expected to load.
const jsPageCheck = `((html) => {
  const want = new DOMParser().parseFromString(html, 'text/html');
  const strip = (root) => {
    const m = root.querySelector('div[role=main], #main-content, main') || root.body;
    const c = m.cloneNode(true);
    c.querySelectorAll('.copybutton, script, style, #implementors-list, #synthetic-implementors-list').forEach(e => e.remove());
    return c.textContent.replace(/\s+/g, ' ').trim();
  };
  const diff = (a, b) => {
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    return 'page: ' + JSON.stringify(a.slice(Math.max(0, i - 60), i + 60)) + ' origin: ' + JSON.stringify(b.slice(Math.max(0, i - 60), i + 60));
  };
  const got = strip(document), wantMain = strip(want);
  const h1 = (d) => { const e = d.querySelector('h1'); return e ? e.textContent.trim() : ''; };
  const res = performance.getEntriesByType('resource')
    .filter(e => new URL(e.name).origin === location.origin)
    .map(e => new URL(e.name).pathname + ' ' + e.responseStatus);
  return {
    title: document.title, h1: h1(document), wantTitle: want.title, wantH1: h1(want),
    mainSame: got === wantMain, mainDiff: got === wantMain ? '' : diff(got, wantMain),
    loadErrors: window.__hearthLoadErrors || ['no error recorder'],
    badImages: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
    badSheets: Array.from(document.querySelectorAll('link[rel=stylesheet]')).filter(l => !l.sheet && !l.disabled).map(l => l.href),
    resources: res,
  };
})(%s)`

// checkDocPage checks the page open in tab against files: its DOM
// against the origin's HTML, the navigation's and every same-origin
// subresource's bytes (fetched again through the worker) against the
// published files, and that nothing failed to load. It returns the site
// bytes the page used. skipHearth ignores the /.hearth/ assets (not served
// from the swarm; unreachable once the origin is down).
func checkDocPage(t testing.TB, tab context.Context, files map[string][]byte, p string, skipHearth bool) int64 {
	t.Helper()
	html, _ := json.Marshal(string(files[p]))
	c := eval[pageCheck](t, tab, fmt.Sprintf(jsPageCheck, html))
	if c.Title != c.WantTitle || c.Title == "" || c.H1 != c.WantH1 || !c.MainSame {
		t.Errorf("%s: DOM title %q h1 %q (main text same: %v %s); origin's HTML: title %q h1 %q", p, c.Title, c.H1, c.MainSame, c.MainDiff, c.WantTitle, c.WantH1)
	}
	var errs []string
	for _, e := range append(c.LoadErrors, append(c.BadImages, c.BadSheets...)...) {
		if skipHearth && strings.Contains(e, "/.hearth/") {
			continue
		}
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		t.Errorf("%s: subresources failed: %v", p, errs)
	}
	eval[bool](t, tab, jsHelpers)
	paths := []string{"/" + p}
	seen := map[string]bool{}
	for _, r := range c.Resources {
		path, status, _ := strings.Cut(r, " ")
		if strings.HasPrefix(path, "/.hearth/") || strings.HasPrefix(path, "/.well-known/") {
			continue
		}
		if _, ok := files["favicon.ico"]; path == "/favicon.ico" && !ok && status == "404" {
			continue // the browser's own guess, on a page that names no icon
		}
		if status != "200" && status != "0" { // 0: Chromium did not expose it
			t.Errorf("%s: subresource %s: status %s", p, path, status)
		}
		if !seen[path] {
			seen[path] = true
			paths = append(paths, path)
		}
	}
	var total int64
	for _, path := range paths {
		name, err := url.PathUnescape(strings.TrimPrefix(path, "/"))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		want, ok := files[name]
		if !ok {
			t.Errorf("%s: loaded %s, which the site does not hold", p, path)
			continue
		}
		if strings.HasSuffix(name, ".html") {
			want, _ = inject.HTML(want) // as the origin and the worker serve it
		}
		total += int64(len(want))
		d := eval[digest](t, tab, fmt.Sprintf(`hearthTest.digest(%q)`, path))
		if d.Status != 200 || d.Hash != sha(want) {
			t.Errorf("%s: %s through the worker: status %d, %d bytes, hash %.12s; the origin's file: %d bytes, %.12s",
				p, path, d.Status, d.Len, d.Hash, len(want), sha(want))
		}
	}
	return total
}

// recordLoadErrors makes every later document of the tab record the
// elements that fail to load (jsResourceErrors), for checkDocPage.
func recordLoadErrors(t testing.TB, tab context.Context) {
	t.Helper()
	if _, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: jsResourceErrors}); err != nil {
		t.Fatalf("adding the error recorder: %v", err)
	}
}

// docVisit is one page navigated and checked.
type docVisit struct {
	loaded time.Duration // navigate → load event, as the test saw it
	nav    string        // the worker's report on the navigation
	worker byKind        // the worker's reports on the page's responses
	used   int64         // site bytes the page used (checkDocPage)
}

// visitDocPage navigates tab to the site's page p at base and checks it
// against files (checkDocPage).
func visitDocPage(t testing.TB, tab context.Context, base string, files map[string][]byte, p string) docVisit {
	t.Helper()
	t0 := time.Now()
	navigate(t, tab, base+"/"+p)
	v := docVisit{loaded: time.Since(t0), nav: navReport(t, tab)}
	v.worker = workerSums(t, tab)
	v.used = checkDocPage(t, tab, files, p, false)
	return v
}

// TestAcceptancePythonDocs is issue 7's acceptance suite on the Python
// docs, served by an origin, a relay and two seeders (each with its own
// replica of the blocks), all on loopback:
//
//   - 20 pages navigated in turn in one tab: each page's DOM matches the
//     origin's HTML, every same-origin subresource is byte-identical to the
//     published file and none failed to load;
//   - counted at the origin, from the second page on: the share of static
//     bytes (gateway and plain files; not the root records nor the
//     /.hearth/ client assets) that came from the seeders;
//     at least 98%, here and in "new tab per page";
//   - the origin killed (its HTTP server closed; the relay and the
//     seeders, each with its own replica, stay up): a page already
//     visited and one never visited still load, from the seeders, with the
//     root the worker holds.
//
// The visitor has one tab and nothing else open, as a visitor clicking
// through the site does: each page's subresources go through that page's
// own agent, which starts at once on a page the worker controls.
func TestAcceptancePythonDocs(t *testing.T) {
	needBrowser(t)
	pythonSite.need(t)
	start := time.Now()
	s := startDocSwarm(t, pythonSite, map[string][]byte{largeFile: randomBytes(t, largeFileSize)})
	o, seeded, files := s.o, &s.seeded, s.files
	b := newBrowser(t)
	tab := b.ctx
	s.visitInOneTab(t, tab)

	t.Run("new tab per page", func(t *testing.T) {
		// Pages not visited yet, each over one chunk, each navigated in a
		// fresh tab (no agent of its own while it navigates).
		o.resetCounts()
		seeded.Store(0)
		var used, peer, orig int64
		for i, p := range freshTabPages {
			ft := b.tab(fmt.Sprintf("fresh%d", i))
			recordLoadErrors(t, ft)
			v := visitDocPage(t, ft, o.URL, files, p)
			peer, orig, used = peer+v.worker.Peer, orig+v.worker.Origin, used+v.used
			t.Logf("%-28s loaded in %5v in a new tab; origin static %d, seeders %d so far; navigation: %s",
				p, v.loaded.Round(time.Millisecond), o.gateway.Load()+o.files.Load(), seeded.Load(), v.nav)
		}
		originStatic, fromSeeders := o.gateway.Load()+o.files.Load(), seeded.Load()
		share := 1 - float64(originStatic)/float64(max(peer+orig, originStatic, 1))
		t.Logf("new tab per page: %d site bytes used; worker took %d bytes from peers, %d from the origin; origin sent %d static bytes, seeders %d: %.2f%% from seeders",
			used, peer, orig, originStatic, fromSeeders, 100*share)
		if share < 0.98 {
			t.Errorf("%.2f%% of the static bytes came from the seeders, want ≥ 98%%; origin requests: %v", 100*share, o.requestLog())
		}
	})

	t.Run("large file with Range", func(t *testing.T) {
		// Seeking in a large file: Range requests at offsets across it,
		// each answered 206 with the published bytes, from the seeders.
		o.resetCounts()
		seeded.Store(0)
		want := files[largeFile]
		eval[bool](t, tab, jsHelpers)
		var asked int64
		for i, off := range seekOffsets(len(want)) {
			end := min(off+seekLength, len(want)) - 1
			d := eval[digest](t, tab, fmt.Sprintf(`hearthTest.digest(%q, {headers: {Range: 'bytes=%d-%d'}})`, "/"+largeFile, off, end))
			wantRange := fmt.Sprintf("bytes %d-%d/%d", off, end, len(want))
			if d.Status != 206 || d.Range != wantRange || d.Hash != sha(want[off:end+1]) {
				t.Errorf("seek %d: bytes=%d-%d: status %d, Content-Range %q, %d bytes, hash %.12s; want 206, %q, %d bytes, %.12s",
					i, off, end, d.Status, d.Range, d.Len, d.Hash, wantRange, end+1-off, sha(want[off:end+1]))
			}
			asked += int64(end + 1 - off)
		}
		ws := workerSums(t, tab)
		originStatic := o.gateway.Load() + o.files.Load()
		t.Logf("%d MiB file, %d seeks: %d bytes asked; seeders sent %d block bytes, the origin %d static bytes; worker: %+v",
			len(want)>>20, len(seekOffsets(len(want))), asked, seeded.Load(), originStatic, ws)
		if seeded.Load() < asked {
			t.Errorf("the seeders sent %d bytes for %d bytes of ranges", seeded.Load(), asked)
		}
		if float64(originStatic) > 0.02*float64(asked) {
			t.Errorf("the origin sent %d static bytes for %d bytes of ranges; requests: %v", originStatic, asked, o.requestLog())
		}
	})

	t.Run("republished while open", func(t *testing.T) {
		// The operator changes one page that the visitor has seen and
		// republishes; the seeders replicate the new root. The next
		// navigation shows the new page; its unchanged assets come from the
		// worker's cache.
		changed := maps.Clone(files)
		changed[republishedPage] = bytes.Replace(files[republishedPage], []byte("<body>"), []byte("<body>\n"+republishedMarker), 1)
		if bytes.Equal(changed[republishedPage], files[republishedPage]) {
			t.Fatalf("%s has no <body> tag", republishedPage)
		}
		rec := o.publish(map[string][]byte{republishedPage: changed[republishedPage]})
		files = changed
		s.files = changed
		replicate(t, o.store.MemStore, s.replicas)
		for _, p := range s.seeders {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := p.SetServing(ctx, true, rec.Root); err != nil {
				t.Fatalf("announcing the new root: %v", err)
			}
			cancel()
		}
		o.resetCounts()
		navigate(t, tab, o.URL+"/"+republishedPage)
		if !eval[bool](t, tab, `document.getElementById('hearth-republished') !== null`) {
			t.Errorf("%s: the page shown is not the republished one", republishedPage)
		}
		type report struct {
			URL                 string
			Peer, Origin, Cache int64
		}
		navReport(t, tab) // waits for the navigation's report
		reports := eval[[]report](t, tab, `hearth.reports().map(r => ({URL: new URL(r.url).pathname, Peer: r.peer|0, Origin: r.origin|0, Cache: r.cache|0}))`)
		checkDocPage(t, tab, files, republishedPage, false) // adds reports of its own
		var assets int
		for _, r := range reports {
			if r.URL == "/"+republishedPage {
				if r.Peer+r.Origin == 0 {
					t.Errorf("the new page came from the cache: %+v", r)
				}
				continue
			}
			assets++
			if r.Peer+r.Origin != 0 || r.Cache == 0 {
				t.Errorf("unchanged asset %s not from the cache: %+v", r.URL, r)
			}
		}
		if assets == 0 {
			t.Errorf("no asset reports: %+v", reports)
		}
		t.Logf("new root seq %d: %d assets from the cache; origin sent %d static bytes", rec.Seq, assets, o.gateway.Load()+o.files.Load())
	})

	t.Run("page load", func(t *testing.T) { s.pageLoadRatios(t) })
	t.Run("origin down", func(t *testing.T) { s.originDown(t, tab) })
	t.Logf("whole test: %v", time.Since(start).Round(time.Millisecond))
}

// TestAcceptanceRustDoc is the acceptance suite on a second, larger site:
// Debian's rust-doc (about 500 MB, 33,000 files; directories of up to
// 5,000 files under core/arch, HAMT-sharded once published; rustdoc's
// scripts, web fonts and search index; mdBook's books), published as it
// is, served by an origin, a relay and two seeders (sharing one replica of
// the blocks):
//
//   - 20 pages of every shape (std, core::arch pages inside the sharded
//     directories, source view, the Book, the Reference) navigated in turn
//     in one tab, each checked as the Python docs' are (checkDocPage);
//   - from the second page on, at least 95% of the static bytes come from
//     the seeders, counted at the origin;
//   - page loads straight from the origin and through the swarm, logged
//     (PAGELOAD rust cold … warm …);
//   - the origin down: a page visited and one never visited (in a sharded
//     directory) still load, from the seeders.
func TestAcceptanceRustDoc(t *testing.T) {
	needBrowser(t)
	rustSite.need(t)
	start := time.Now()
	s := startDocSwarm(t, rustSite, nil)
	b := newBrowser(t)
	s.visitInOneTab(t, b.ctx)
	t.Run("page load", func(t *testing.T) { s.pageLoadRatios(t) })
	t.Run("origin down", func(t *testing.T) { s.originDown(t, b.ctx) })
	t.Logf("whole test: %v", time.Since(start).Round(time.Millisecond))
}

// peerPages are the pages of the peer tests, each navigated in turn.
var peerPages = []string{"tutorial/datastructures.html", "library/string.html", "library/math.html", "library/random.html", "howto/sorting.html"}

// TestAcceptancePeers is the rest of issue 7's acceptance suite on the
// Python docs, with tab seeding on in the site's config:
//
//   - one seeder serving corrupt blocks beside an honest one: every page
//     is right (DOM and bytes), the liar did send blocks, and the page
//     agent has banned it;
//   - the seeders stopped, a second browser (another profile, another
//     service worker) visits the same pages: its blocks come from the
//     first browser's tabs.
func TestAcceptancePeers(t *testing.T) {
	needBrowser(t)
	needLAN(t)
	pythonSite.need(t)
	files := loadDocs(t, pythonSite.dir)
	relayURL := startRelay(t)
	o := startOrigin(t, files, jsconfig.Config{Relays: []string{relayURL}, TabSeeding: true, UploadKiBps: 64 << 10})
	root := o.origin.Feed().Latest().Root
	var honestSent, liarSent atomic.Int64
	honest := startSeeder(t, relayURL, o.site, countingGetter(copyStore(t, o.store.MemStore), &honestSent), root, false)
	liar := startSeeder(t, relayURL, o.site, countingGetter(copyStore(t, o.store.MemStore), &liarSent), root, true)

	// visit navigates the peer pages in a new tab of b, checks each, and
	// returns the tab and what the worker reported.
	visit := func(t *testing.T, b *browser, name string) (context.Context, byKind) {
		tab := b.tab(name)
		recordLoadErrors(t, tab)
		var sum byKind
		for _, p := range peerPages {
			v := visitDocPage(t, tab, o.URL, files, p)
			sum.Peer, sum.Origin, sum.Cache = sum.Peer+v.worker.Peer, sum.Origin+v.worker.Origin, sum.Cache+v.worker.Cache
			t.Logf("%-28s navigation: %s", p, v.nav)
		}
		return tab, sum
	}

	first := newBrowser(t)
	openTabWithAgent(t, first.ctx, o.URL+"/index.html")
	eval[bool](t, first.ctx, `hearth.seed(true)`) // the visitor consents to seed
	waitFor(t, first.ctx, "the page agent to find both seeders", `hearth.agent.then(a => a.stats().peers >= 2)`, 30*time.Second)
	firstTabs := []context.Context{first.ctx}

	t.Run("corrupt seeder", func(t *testing.T) {
		o.resetCounts()
		visitor, sum := visit(t, first, "visitor")
		firstTabs = append(firstTabs, visitor)
		// The worker spreads its requests over every agent of the browser,
		// so the liar may have been met by either tab's agent: each agent
		// that verified a bad block from it bans it, and none bans the
		// honest seeder.
		var banned []any
		var agents []map[string]any
		for _, tab := range firstTabs {
			st := eval[map[string]any](t, tab, `hearth.agent.then(a => a.stats())`)
			agents = append(agents, st)
			b, _ := st["banned"].([]any)
			banned = append(banned, b...)
		}
		t.Logf("worker: %+v; the honest seeder sent %d block bytes, the liar %d; origin static %d; agents: %v",
			sum, honestSent.Load(), liarSent.Load(), o.gateway.Load()+o.files.Load(), agents)
		if liarSent.Load() == 0 {
			t.Errorf("the lying seeder was never asked: the test proves nothing")
		}
		found := false
		for _, id := range banned {
			found = found || id == liar.ID()
		}
		if !found {
			t.Errorf("the lying seeder %s is not banned by any agent: banned %v", liar.ID(), banned)
		}
		for _, id := range banned {
			if id == honest.ID() {
				t.Errorf("the honest seeder is banned")
			}
		}
	})

	t.Run("tab seeding", func(t *testing.T) {
		waitFor(t, first.ctx, "the first browser's tab to seed", `hearth.agent.then(a => a.stats().seeding === true)`, 30*time.Second)
		_ = honest.Close()
		_ = liar.Close()
		second := newBrowser(t)
		openTabWithAgent(t, second.ctx, o.URL+"/index.html")
		o.resetCounts()
		honestSent.Store(0)
		_, sum := visit(t, second, "second-visitor")
		originStatic := o.gateway.Load() + o.files.Load()
		var out float64
		for _, tab := range firstTabs {
			out += eval[float64](t, tab, `hearth.agent.then(a => a.stats().bytesOut)`)
		}
		t.Logf("second browser's worker: %+v; origin static %d; the first browser's tabs sent %.0f bytes", sum, originStatic, out)
		if sum.Peer == 0 || float64(originStatic) > 0.05*float64(sum.Peer+sum.Origin) {
			t.Errorf("the second browser took %d bytes from peers, %d from the origin (origin sent %d): want ≥ 95%% from the first browser's tabs; requests: %v",
				sum.Peer, sum.Origin, originStatic, o.requestLog())
		}
		if out < float64(sum.Peer) {
			t.Errorf("the first browser's tabs sent %.0f bytes, less than the %d the second browser took from peers", out, sum.Peer)
		}
	})
}
