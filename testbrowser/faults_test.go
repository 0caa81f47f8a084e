package testbrowser

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"

	"github.com/hearthcdn/hearth/js/jsconfig"
)

// jsStartRead starts reading a URL through the page's fetch in the
// background: window.hearthRead settles with {len, hash, err} (err: the
// error's name when the body failed), and window.hearthReadProgress counts
// the bytes read so far.
const jsStartRead = `(() => {
  window.hearthReadProgress = 0;
  window.hearthRead = (async () => {
    const parts = [];
    try {
      const r = await fetch(%q);
      const rd = r.body.getReader();
      for (;;) {
        const {done, value} = await rd.read();
        if (done) break;
        parts.push(value);
        window.hearthReadProgress += value.length;
      }
    } catch (e) {
      return {len: window.hearthReadProgress, hash: '', err: e.name || String(e)};
    }
    const all = new Uint8Array(window.hearthReadProgress);
    let off = 0;
    for (const p of parts) { all.set(p, off); off += p.length; }
    const d = await crypto.subtle.digest('SHA-256', all);
    return {len: all.length, hash: Array.from(new Uint8Array(d)).map(x => x.toString(16).padStart(2, '0')).join(''), err: ''};
  })();
  return true;
})()`

// readResult is what window.hearthRead settles with.
type readResult struct {
	Len  int    `json:"len"`
	Hash string `json:"hash"`
	Err  string `json:"err"`
}

// startRead starts reading url in the tab and waits until at least min
// bytes have arrived.
func startRead(t *testing.T, tab context.Context, url string, min int) {
	t.Helper()
	eval[bool](t, tab, fmt.Sprintf(jsStartRead, url))
	waitFor(t, tab, fmt.Sprintf("%d bytes of %s", min, url), fmt.Sprintf(`window.hearthReadProgress >= %d`, min), 30*time.Second)
}

// TestFaults: the faults issue 6 names, in a browser. Each either falls
// back and serves the right bytes, or fails visibly; never a wrong or a
// silently short body.
func TestFaults(t *testing.T) {
	needBrowser(t)
	const size = 24 << 20
	files := map[string][]byte{
		"index.html": []byte(`<!doctype html><script src="/.hearth/hearth.js" defer></script><p>faults</p>`),
		// A page in the worker's scope without hearth.js: controlled, but
		// with no agent of its own.
		"plain.html": []byte(`<!doctype html><p>plain</p>`),
		"a.bin":      randomBytes(t, size),
		"b.bin":      randomBytes(t, size),
		"c.bin":      randomBytes(t, 8<<20),
	}
	relayURL := startRelay(t)
	// plain.html stays without the loader: neither the origin nor the
	// worker adds it.
	o := startOrigin(t, files, jsconfig.Config{Relays: []string{relayURL}, NoInject: true})
	startSeeder(t, relayURL, o.site, o.store.MemStore, o.origin.Feed().Latest().Root, false)
	br := newBrowser(t)

	// The agent lives in a tab of its own, which the test closes; the
	// reading page has no agent.
	if err := chromedp.Do(br.ctx); err != nil { // the browser and the reading tab first
		t.Fatalf("starting the browser: %v", err)
	}
	agentTab, closeAgentTab := chromedp.NewContext(br.ctx)
	defer closeAgentTab()
	if err := chromedp.Do(agentTab); err != nil {
		t.Fatalf("opening the agent's tab: %v", err)
	}
	openTabWithAgent(t, agentTab, o.URL+"/")
	tab := br.ctx
	navigate(t, tab, o.URL+"/plain.html")
	waitFor(t, tab, "the worker to control the page", `navigator.serviceWorker.controller !== null`, 30*time.Second)
	eval[bool](t, tab, jsHelpers)

	t.Run("agent tab closed mid-transfer", func(t *testing.T) {
		o.resetCounts()
		startRead(t, tab, "/a.bin", 1<<20)
		closeAgentTab()
		got := eval[readResult](t, tab, `window.hearthRead`)
		if got.Err != "" || got.Len != size || got.Hash != sha(files["a.bin"]) {
			t.Fatalf("a.bin after the agent's tab closed: %+v", got)
		}
		// Part came through the agent, the rest from the origin's gateway.
		g := o.gateway.Load()
		t.Logf("the gateway sent %d of %d bytes", g, size)
		if g == 0 || g >= size {
			t.Errorf("the gateway sent %d of %d bytes: want the agent's share and then the gateway's", g, size)
		}
	})

	t.Run("worker stopped mid-response", func(t *testing.T) {
		if _, err := chromedp.Call(tab, serviceworker.Enable, cdp.Empty{}); err != nil {
			t.Fatalf("enabling the ServiceWorker domain: %v", err)
		}
		startRead(t, tab, "/b.bin", 1<<20)
		if _, err := chromedp.Call(tab, serviceworker.StopAllWorkers, cdp.Empty{}); err != nil {
			t.Fatalf("stopping the worker: %v", err)
		}
		got := eval[readResult](t, tab, `window.hearthRead`)
		switch {
		case got.Err != "":
			t.Logf("the body failed visibly after %d bytes: %s", got.Len, got.Err)
		case got.Len != size || got.Hash != sha(files["b.bin"]):
			t.Fatalf("b.bin read to the end but wrong: %d bytes, %s", got.Len, got.Hash)
		}
		// The worker starts again for the next request.
		d := eval[digest](t, tab, `hearthTest.digest('/b.bin')`)
		if d.Status != 200 || d.Hash != sha(files["b.bin"]) {
			t.Fatalf("b.bin after the worker restarted: %+v", d)
		}
	})

	t.Run("cache quota exceeded", func(t *testing.T) {
		quota := float64(1 << 20)
		if _, err := chromedp.Call(tab, storage.OverrideQuotaForOrigin, storage.OverrideQuotaForOriginParams{Origin: o.URL, QuotaSize: &quota}); err != nil {
			t.Fatalf("overriding the quota: %v", err)
		}
		navigate(t, tab, o.URL+"/")
		eval[bool](t, tab, `window.hearthErrors = []; window.addEventListener('hearth:error', (e) => hearthErrors.push(e.detail.reason)); true`)
		eval[bool](t, tab, jsHelpers)
		d := eval[digest](t, tab, `hearthTest.digest('/c.bin')`)
		if d.Status != 200 || d.Hash != sha(files["c.bin"]) {
			t.Fatalf("c.bin with the cache over quota: %+v", d)
		}
		// The worker writes the blocks once idle, is refused, and says so.
		waitFor(t, tab, "a cache-quota error event", `hearthErrors.includes('cache-quota')`, 30*time.Second)
		d = eval[digest](t, tab, `hearthTest.digest('/c.bin')`)
		if d.Status != 200 || d.Hash != sha(files["c.bin"]) {
			t.Fatalf("c.bin again after the quota error: %+v", d)
		}
	})
}

// jsCacheCounts counts the worker's block cache entries and the entries
// its saved LRU index lists: {blocks, indexed}.
const jsCacheCounts = `(async () => {
  const blocks = (await (await caches.open('hearth-blocks-v1')).keys()).length;
  const r = await (await caches.open('hearth-meta-v1')).match(location.origin + '/.hearth/meta/lru');
  let indexed = 0;
  if (r) {
    const b = new Uint8Array(await r.arrayBuffer());
    let i = 0;
    const uv = () => { let x = 0, s = 0; for (let k = 0; k < 10 && i < b.length; k++) { const c = b[i++]; x += (c & 0x7f) * 2 ** s; s += 7; if (c < 0x80) break; } return x; };
    for (let k = 0; k < 100000 && i < b.length; k++) { const n = uv(); i += n; uv(); uv(); indexed++; }
  }
  return {blocks, indexed};
})()`

type cacheCounts struct {
	Blocks  int `json:"blocks"`
	Indexed int `json:"indexed"`
}

// TestCacheSurvivesStop stops the worker right after it wrote blocks to
// Cache Storage, before it saved its LRU index: at the next start it must
// keep those blocks (adopt them into the index), not delete them, and serve
// the file from them without the origin.
func TestCacheSurvivesStop(t *testing.T) {
	needBrowser(t)
	const size = 4 << 20 // 16 leaves of 256 KiB and their root
	files := map[string][]byte{
		"index.html": []byte(`<!doctype html><script src="/.hearth/hearth.js" defer></script><p>cache</p>`),
		"x.bin":      randomBytes(t, size),
	}
	o := startOrigin(t, files, jsconfig.Config{})
	br := newBrowser(t)
	tab := br.ctx
	loadControlled(t, tab, o.URL+"/")
	eval[bool](t, tab, jsHelpers)
	if d := eval[digest](t, tab, `hearthTest.digest('/x.bin')`); d.Status != 200 || d.Hash != sha(files["x.bin"]) {
		t.Fatalf("x.bin: %+v", d)
	}
	const want = size/(256<<10) + 1
	waitFor(t, tab, fmt.Sprintf("%d blocks in Cache Storage", want),
		fmt.Sprintf(`(async () => (await (await caches.open('hearth-blocks-v1')).keys()).length >= %d)()`, want), 30*time.Second)
	if _, err := chromedp.Call(tab, serviceworker.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enabling the ServiceWorker domain: %v", err)
	}
	if _, err := chromedp.Call(tab, serviceworker.StopAllWorkers, cdp.Empty{}); err != nil {
		t.Fatalf("stopping the worker: %v", err)
	}
	before := eval[cacheCounts](t, tab, jsCacheCounts)
	t.Logf("at the stop: %d blocks in Cache Storage, %d in the saved index", before.Blocks, before.Indexed)

	// The worker starts again for the navigation and reconciles its index
	// with Cache Storage; once it saves the index, that lists every block.
	loadControlled(t, tab, o.URL+"/")
	waitFor(t, tab, "the saved index to list the blocks written before the stop",
		fmt.Sprintf(`(async () => { const c = await (%s); return c.indexed >= %d || c.blocks < %d; })()`, jsCacheCounts, want, want), 30*time.Second)
	after := eval[cacheCounts](t, tab, jsCacheCounts)
	if after.Blocks < want || after.Indexed < want {
		t.Fatalf("after the restart: %d blocks in Cache Storage, %d indexed; want at least %d of each", after.Blocks, after.Indexed, want)
	}
	o.resetCounts()
	eval[bool](t, tab, jsHelpers)
	if d := eval[digest](t, tab, `hearthTest.digest('/x.bin')`); d.Status != 200 || d.Hash != sha(files["x.bin"]) {
		t.Fatalf("x.bin after the restart: %+v", d)
	}
	if g, f := o.gateway.Load(), o.files.Load(); g != 0 || f != 0 {
		t.Errorf("x.bin after the restart took %d bytes from the gateway and %d from the origin's files; want all from the cache", g, f)
	}
}
