package testbrowser

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/js/jsconfig"
)

// digest is what hearthTest.digest returns.
type digest struct {
	Status int    `json:"status"`
	Len    int    `json:"len"`
	Hash   string `json:"hash"`
	Type   string `json:"type"`
	ETag   string `json:"etag"`
	Range  string `json:"range"`
}

// stats is hearth.stats().
type stats struct {
	Cache, Peer, Origin          int64
	Passthrough, Responses       int
	PeerFailures, OriginFailures int
}

func sha(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

// loadControlled loads url in a tab and waits until the service worker
// controls it: the first visit installs the worker, which claims the page.
func loadControlled(t testing.TB, tab context.Context, url string) {
	t.Helper()
	navigate(t, tab, url)
	waitFor(t, tab, "the service worker to control the page", `navigator.serviceWorker.controller !== null`, 30*time.Second)
}

// pageStats waits until the page has reports of at least n responses and
// returns the totals.
func pageStats(t testing.TB, tab context.Context, n int) stats {
	t.Helper()
	waitFor(t, tab, fmt.Sprintf("%d response reports", n), fmt.Sprintf(`window.hearth && hearth.stats().responses >= %d`, n), 30*time.Second)
	return eval[stats](t, tab, `hearth.stats()`)
}

// checkAssets fetches each path through the page and compares its bytes.
func checkAssets(t testing.TB, tab context.Context, files map[string][]byte, paths []string) {
	t.Helper()
	eval[bool](t, tab, jsHelpers)
	for _, p := range paths {
		d := eval[digest](t, tab, fmt.Sprintf(`hearthTest.digest(%q)`, p))
		name := strings.TrimPrefix(p, "/")
		if name == "" || strings.HasSuffix(name, "/") {
			name += "index.html"
		}
		want := files[name]
		if d.Status != 200 || d.Hash != sha(want) {
			t.Errorf("%s: status %d, %d bytes, hash %.12s; want 200, %d bytes, %.12s", p, d.Status, d.Len, d.Hash, len(want), sha(want))
		}
	}
}

// TestSWGateway loads a page of 20 assets through the service worker with
// no page agent: every byte comes from the origin's trustless gateway,
// verified; then from the cache. It checks Range, a corrupt gateway (the
// worker falls back to the plain URL, or fails the stream, but never
// serves a bad byte) and the pass-through of what is not the worker's.
func TestSWGateway(t *testing.T) {
	needBrowser(t)
	files, assets := pageSite(t, 20)
	files["big.bin"] = randomBytes(t, 1<<20+777) // five leaves
	files["fresh1.txt"] = []byte("fresh, single block")
	files["fresh2.bin"] = randomBytes(t, 600<<10) // three leaves
	o := startOrigin(t, files, jsconfig.Config{})
	b := newBrowser(t)
	tab := b.ctx

	loadControlled(t, tab, o.URL+"/")
	o.resetCounts()
	start := time.Now()
	navigate(t, tab, o.URL+"/")
	st := pageStats(t, tab, len(assets)+1)
	t.Logf("timings: %s", eval[string](t, tab, `JSON.stringify({nav: performance.getEntriesByType('navigation').map(e => [e.requestStart|0, e.responseStart|0, e.responseEnd|0, e.loadEventEnd|0]), res: performance.getEntriesByType('resource').map(e => [e.name.split('/').pop(), e.startTime|0, e.responseStart|0, e.responseEnd|0])})`))
	t.Logf("origin log: %s", strings.Join(o.requestLog(), "\n"))
	t.Logf("reports: %s", eval[string](t, tab, `JSON.stringify(hearth.reports().map(r => [r.url.split('/').pop(), r.recordMs|0, r.headersMs|0, r.firstByteMs|0, r.doneMs|0]))`))
	t.Logf("second load (through the worker, from the gateway): %v; stats %+v; origin sent gateway %d, files %d, records %d bytes",
		time.Since(start).Round(time.Millisecond), st, o.gateway.Load(), o.files.Load(), o.records.Load())
	total := totalSize(files, assets)
	if st.Origin < total || st.Passthrough != 0 {
		t.Errorf("stats %+v: want ≥ %d bytes from the origin's gateway and no pass-through", st, total)
	}
	if o.files.Load() != 0 {
		t.Errorf("the origin served %d bytes of plain files; want all through the gateway: %v", o.files.Load(), o.requestLog())
	}
	checkAssets(t, tab, files, append(assets, "/", "/big.bin"))

	// Third load: from the cache.
	o.resetCounts()
	navigate(t, tab, o.URL+"/")
	waitFor(t, tab, "reports", fmt.Sprintf(`hearth.stats().responses >= %d`, len(assets)+1), 30*time.Second)
	st = eval[stats](t, tab, `hearth.stats()`)
	if st.Cache < total || st.Origin != 0 || o.gateway.Load() != 0 {
		t.Errorf("third load: stats %+v, gateway sent %d bytes; want all from the cache", st, o.gateway.Load())
	}

	t.Run("range", func(t *testing.T) {
		eval[bool](t, tab, jsHelpers)
		big := files["big.bin"]
		for _, r := range []struct {
			hdr      string
			from, to int
		}{
			{"bytes=300000-300999", 300000, 300999},
			{"bytes=-100", len(big) - 100, len(big) - 1},
			{"bytes=262000-", 262000, len(big) - 1},
		} {
			d := eval[digest](t, tab, fmt.Sprintf(`hearthTest.digest('/big.bin', {headers: {Range: %q}})`, r.hdr))
			want := big[r.from : r.to+1]
			wantRange := fmt.Sprintf("bytes %d-%d/%d", r.from, r.to, len(big))
			if d.Status != 206 || d.Hash != sha(want) || d.Range != wantRange {
				t.Errorf("%s: %d %q, %d bytes; want 206 %q, %d bytes", r.hdr, d.Status, d.Range, d.Len, wantRange, len(want))
			}
		}
	})

	t.Run("headers", func(t *testing.T) {
		d := eval[digest](t, tab, `hearthTest.digest('/css/s0.css')`)
		if d.Type != "text/css; charset=utf-8" || !strings.HasPrefix(d.ETag, `"b`) {
			t.Errorf("Content-Type %q, ETag %q", d.Type, d.ETag)
		}
		code := eval[int](t, tab, `fetch('/css/', {redirect: 'manual'}).then(r => r.type === 'opaqueredirect' ? 301 : r.status)`)
		if code != 404 && code != 301 {
			t.Errorf("directory without slash: %d", code)
		}
	})

	t.Run("corrupt gateway", func(t *testing.T) {
		o.corruptGateway.Store(true)
		defer o.corruptGateway.Store(false)
		o.resetCounts()
		before := settledStats(t, tab)
		// A one-block file: the bad block is caught before the headers, and
		// the worker passes the request to the origin's plain URL.
		d := eval[digest](t, tab, `hearthTest.digest('/fresh1.txt')`)
		if d.Status != 200 || d.Hash != sha(files["fresh1.txt"]) {
			t.Errorf("fresh1.txt: %+v", d)
		}
		if o.gateway.Load() == 0 || o.files.Load() == 0 {
			t.Errorf("want a gateway attempt then the plain URL: %v", o.requestLog())
		}
		// A three-leaf file whose last leaf is bad: the first leaves are
		// served as they are verified, then the stream fails; the page
		// never gets a wrong byte.
		res := eval[string](t, tab, `fetch('/fresh2.bin').then(r => r.arrayBuffer()).then(b => 'got ' + b.byteLength, e => 'failed: ' + e.name)`)
		if !strings.HasPrefix(res, "failed") {
			t.Errorf("fresh2.bin with a corrupt last leaf: %s", res)
		}
		waitFor(t, tab, "reports", fmt.Sprintf(`hearth.stats().responses >= %d`, before.Responses+2), 10*time.Second)
		after := eval[stats](t, tab, `hearth.stats()`)
		if after.OriginFailures-before.OriginFailures < 2 || after.Passthrough-before.Passthrough != 1 {
			t.Errorf("stats before %+v after %+v: want 2 gateway failures, 1 pass-through; last reports %s", before, after,
				eval[string](t, tab, `JSON.stringify(hearth.reports().slice(-4))`))
		}
	})

	t.Run("pass-through", func(t *testing.T) {
		o.resetCounts()
		// POST, no-store and paths outside the worker's reach go straight
		// to the network.
		eval[int](t, tab, `fetch('/css/s0.css', {method: 'POST'}).then(r => r.status)`)
		eval[int](t, tab, `fetch('/css/s0.css', {cache: 'no-store'}).then(r => r.status)`)
		eval[int](t, tab, `fetch('/.hearth/config.json').then(r => r.status)`)
		log := strings.Join(o.requestLog(), "\n")
		for _, want := range []string{"POST /css/s0.css", "GET /css/s0.css"} {
			if !strings.Contains(log, want) {
				t.Errorf("origin did not see %q; saw:\n%s", want, log)
			}
		}
	})
}

// TestSWRoots checks that a navigation picks up a new root at once (with
// no freshness bound configured), that a
// changed file is never served from the old root, and that a rolled-back or
// forged root record is refused.
func TestSWRoots(t *testing.T) {
	needBrowser(t)
	files := map[string][]byte{
		"index.html": []byte(`<!doctype html><script src="/.hearth/hearth.js" defer></script><p>v</p>`),
		"data.txt":   []byte("version one"),
		"same.txt":   []byte("unchanged"),
	}
	// No freshness bound: every navigation waits for the origin's record
	// (with one, a navigation within the bound may show the root held).
	o := startOrigin(t, files, jsconfig.Config{MaxStaleMS: -1})
	rec1 := o.origin.Feed().Latest()
	b := newBrowser(t)
	tab := b.ctx
	loadControlled(t, tab, o.URL+"/")
	navigate(t, tab, o.URL+"/")
	text := func() string {
		return eval[string](t, tab, `fetch('/data.txt').then(r => r.text())`)
	}
	if got := text(); got != "version one" {
		t.Fatalf("data.txt: %q", got)
	}
	rec2 := o.publish(map[string][]byte{
		"data.txt":   []byte("version two"),
		"index.html": []byte(`<!doctype html><script src="/.hearth/hearth.js" defer></script><p>v2</p>`),
	})
	if rec2.Seq <= rec1.Seq {
		t.Fatalf("publish did not sign a new record")
	}
	// The page loaded from root 1 keeps seeing root 1.
	if got := text(); got != "version one" {
		t.Errorf("same page after publish: %q, want version one", got)
	}
	navigate(t, tab, o.URL+"/")
	if got := text(); got != "version two" {
		t.Fatalf("after a navigation: %q, want version two", got)
	}
	// The navigation itself, which the worker began serving from the root
	// it held while the record was fetched, is the new page.
	if got := eval[string](t, tab, `document.querySelector('p').textContent`); got != "v2" {
		t.Fatalf("the page after a navigation: %q, want v2", got)
	}
	// Roll back: the origin serves record 1 again. The worker keeps root 2.
	old := rec1.Bytes()
	o.recordOverride.Store(&old)
	navigate(t, tab, o.URL+"/")
	if got := text(); got != "version two" {
		t.Errorf("after a rolled-back record: %q, want version two", got)
	}
	// A forged record (bad signature) with a higher sequence is refused too.
	forged := rec2.Bytes()
	forged[34] ^= 0xff // sequence byte: the signature no longer covers it
	o.recordOverride.Store(&forged)
	navigate(t, tab, o.URL+"/")
	if got := text(); got != "version two" {
		t.Errorf("after a forged record: %q, want version two", got)
	}
}

// settledStats returns the page's stats once no report has arrived for
// 100 ms (at most 3 s): reports of earlier responses may still be on their
// way, posted together a little after the responses.
func settledStats(t testing.TB, tab context.Context) stats {
	t.Helper()
	return eval[stats](t, tab, `(async () => {
	  let last = -1;
	  for (let i = 0; i < 30 && hearth.stats().responses !== last; i++) {
	    last = hearth.stats().responses;
	    await new Promise(res => setTimeout(res, 100));
	  }
	  return hearth.stats();
	})()`)
}
