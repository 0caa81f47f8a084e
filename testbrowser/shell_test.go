package testbrowser

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/chromedp"

	"github.com/hearthcdn/hearth/js/jsconfig"
)

// TestOriginDownShell: a visitor saw two pages; then the origin dies. A
// page never visited, published unmodified, still loads from the seeder
// through the departing page's agent, and its own agent starts from
// Hearth's files that the worker kept at install (the loader, wasm_exec.js
// and the agent's wasm), so it reaches the seeder too, and the page's
// images, asked for before that agent was up, wait for it.
func TestOriginDownShell(t *testing.T) {
	testOriginDown(t, false)
}

// TestOriginDownColdWorker: as TestOriginDownShell, with the worker
// stopped before the navigation: the navigation the network fails comes
// back to the worker as it boots, which asks the open page to connect its
// agent again, and is served through it.
func TestOriginDownColdWorker(t *testing.T) {
	testOriginDown(t, true)
}

func testOriginDown(t *testing.T, cold bool) {
	needBrowser(t)
	files := map[string][]byte{
		"index.html": []byte("<!doctype html><html><head><title>home</title></head><body><p>home</p></body></html>"),
	}
	var imgs []string
	for i := range 4 {
		name := fmt.Sprintf("img/%d.png", i)
		files[name] = randomPNG(t, 96<<10)
		imgs = append(imgs, `<img src="/`+name+`">`)
	}
	files["next.html"] = []byte("<!doctype html><html><head><title>next</title></head><body><p id=m>never visited</p>" + strings.Join(imgs, "") + "</body></html>")
	relayURL := startRelay(t)
	o := startOrigin(t, files, jsconfig.Config{Relays: []string{relayURL}})
	startSeeder(t, relayURL, o.site, o.store.MemStore, o.origin.Feed().Latest().Root, false)

	br := newBrowser(t)
	tab := br.ctx
	debugAgents(t, tab)
	openTabWithAgent(t, tab, o.URL+"/")
	openTabWithAgent(t, tab, o.URL+"/") // now controlled from its start
	waitFor(t, tab, "the worker to keep Hearth's own files",
		`caches.open('hearth-shell-v1').then(c => c.keys()).then(k => k.length >= 4)`, 30*time.Second)

	o.srv.CloseClientConnections()
	o.srv.Close()
	if r, err := http.Get(o.URL + "/"); err == nil {
		r.Body.Close()
		t.Fatalf("the origin still answers: %s", r.Status)
	}
	if cold {
		if _, err := chromedp.Call(tab, serviceworker.Enable, cdp.Empty{}); err != nil {
			t.Fatalf("enabling the ServiceWorker domain: %v", err)
		}
		if _, err := chromedp.Call(tab, serviceworker.StopAllWorkers, cdp.Empty{}); err != nil {
			t.Fatalf("stopping the worker: %v", err)
		}
	}

	navigate(t, tab, o.URL+"/next.html")
	if got := eval[string](t, tab, `(document.getElementById('m') || {}).textContent || ''`); got != "never visited" {
		t.Fatalf("next.html with the origin down: text %q", got)
	}
	waitFor(t, tab, "the page's agent to start from the kept files", `window.hearth !== undefined && hearth.agent.then(a => a.stats().peers >= 1)`, 30*time.Second)
	waitFor(t, tab, "every image to settle", `Array.from(document.images).every(i => i.complete)`, 60*time.Second)
	if bad := eval[int](t, tab, `Array.from(document.images).filter(i => i.naturalWidth === 0).length`); bad != 0 {
		t.Errorf("%d of %d images failed with the origin down; reports: %s", bad, len(imgs), eval[string](t, tab, `JSON.stringify(hearth.reports())`))
	}
}
