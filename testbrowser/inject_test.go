package testbrowser

import (
	"testing"
	"time"

	"github.com/hearthcdn/hearth/js/jsconfig"
)

// jsLoaderTags counts the loader's script elements in the document.
const jsLoaderTags = `document.querySelectorAll('script[src="/.hearth/hearth.js"]').length`

// TestZeroEdit publishes pages that do not carry the loader: the origin
// adds it to the HTML it serves, so the worker registers, and the worker
// adds it to the HTML it assembles from blocks, exactly once, also to a
// page that carries it already by hand.
func TestZeroEdit(t *testing.T) {
	needBrowser(t)
	files := map[string][]byte{
		"index.html":  []byte("<!doctype html><html><head><title>home</title></head><body><p>home</p></body></html>"),
		"next.html":   []byte("<!doctype html><html lang=en><head><meta charset=utf-8><title>next</title></head><body><p>next</p></body></html>"),
		"tagged.html": []byte(`<!doctype html><head><script src="/.hearth/hearth.js" defer></script><title>t</title></head><p>tagged</p>`),
	}
	o := startOrigin(t, files, jsconfig.Config{})
	br := newBrowser(t)
	tab := br.ctx
	loadControlled(t, tab, o.URL+"/")
	if n := eval[int](t, tab, jsLoaderTags); n != 1 {
		t.Fatalf("index.html from the origin has %d loader tags, want 1", n)
	}
	for _, p := range []string{"/next.html", "/tagged.html"} {
		o.resetCounts()
		navigate(t, tab, o.URL+p)
		waitFor(t, tab, "the page's loader to run", `window.hearth !== undefined`, 30*time.Second)
		if n := eval[int](t, tab, jsLoaderTags); n != 1 {
			t.Errorf("%s through the worker has %d loader tags, want 1", p, n)
		}
		if f := o.files.Load(); f != 0 {
			t.Errorf("%s: the origin's files sent %d bytes; want the page assembled by the worker from blocks", p, f)
		}
	}
}

// TestNoInject: with the loader off, an unmodified page registers no
// worker, and the worker, registered by a page that carries the tag
// itself, serves the others as published.
func TestNoInject(t *testing.T) {
	needBrowser(t)
	files := map[string][]byte{
		"index.html":  []byte("<!doctype html><title>x</title><p>x"),
		"tagged.html": []byte(`<!doctype html><head><script src="/.hearth/hearth.js" defer></script><title>t</title></head><p>t`),
	}
	o := startOrigin(t, files, jsconfig.Config{NoInject: true})
	br := newBrowser(t)
	navigate(t, br.ctx, o.URL+"/")
	if n := eval[int](t, br.ctx, jsLoaderTags); n != 0 {
		t.Fatalf("%d loader tags with NoInject", n)
	}
	if reg := eval[bool](t, br.ctx, `navigator.serviceWorker.getRegistrations().then(r => r.length > 0)`); reg {
		t.Errorf("a worker registered with NoInject")
	}
	loadControlled(t, br.ctx, o.URL+"/tagged.html")
	o.resetCounts()
	navigate(t, br.ctx, o.URL+"/")
	if n := eval[int](t, br.ctx, jsLoaderTags); n != 0 {
		t.Errorf("the worker added the loader with NoInject: %d tags", n)
	}
	if f := o.files.Load(); f != 0 {
		t.Errorf("the origin's files sent %d bytes; want the page from the worker", f)
	}
}
