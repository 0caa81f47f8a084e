package testbrowser

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hearthcdn/hearth/internal/harness"
)

// TestNginxBrowser: a real origin and a real seeder (the hearth binary,
// embedding the assets TestMain built), each behind nginx running the
// README's server block with a certificate of a CA made for the test.
// Chromium trusts the certificate by its public key
// (--ignore-certificate-errors-spki-list, which leaves the origin secure:
// service workers register). The acceptance pages load over HTTPS through
// the origin's nginx, controlled by the service worker, each page's DOM
// and subresources identical to the published files; a page loads the same
// way through the seeder's nginx.
func TestNginxBrowser(t *testing.T) {
	needBrowser(t)
	harness.NeedNginx(t)
	ca := harness.NewTestCA(t)
	t.Setenv("SSL_CERT_FILE", ca.CAFile) // the seeder reaches the origin through nginx

	src := filepath.Join(t.TempDir(), "site")
	pages := pythonSite.pages
	var files map[string][]byte
	if _, err := os.Stat(pythonSite.dir); err == nil {
		harness.CopyTree(t, pythonSite.dir, src)
		files = loadDocs(t, src)
	} else {
		t.Logf("python3-doc is not installed (%v): a small site instead", err)
		files = map[string][]byte{
			"index.html": []byte(`<!doctype html><html><head><title>home</title><link rel="stylesheet" href="s.css"></head><body><div role="main"><h1>home</h1></div></body></html>`),
			"next.html":  []byte(`<!doctype html><html><head><title>next</title><link rel="stylesheet" href="s.css"></head><body><div role="main"><h1>next</h1></div></body></html>`),
			"s.css":      []byte("h1 { color: #333 }"),
		}
		for name, b := range files {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		pages = []string{"index.html", "next.html"}
	}

	key := harness.NewKey(t)
	origin := harness.StartOrigin(t, key, src)
	originProxy := harness.StartNginx(t, ca, origin.Addr)
	seeder := harness.StartSeeder(t, "seeder", key.Site, originProxy.URL())
	seeder.WaitMetric("hearth_pinned_sequence", 2*time.Minute, func(v float64) bool { return v == 1 })
	seederProxy := harness.StartNginx(t, ca, seeder.Addr)

	br := newBrowser(t, chromedp.Flag("ignore-certificate-errors-spki-list", ca.SPKIHash))
	tab := br.ctx
	recordLoadErrors(t, tab)

	// The first page installs the worker; from the second on, the worker
	// controls every page.
	navigate(t, tab, originProxy.URL()+"/"+pages[0])
	waitFor(t, tab, "the service worker to be active", `navigator.serviceWorker.ready.then(r => r.active !== null)`, 30*time.Second)
	for _, p := range pages[1:] {
		v := visitDocPage(t, tab, originProxy.URL(), files, p)
		if !eval[bool](t, tab, `navigator.serviceWorker.controller !== null && location.protocol === 'https:'`) {
			t.Fatalf("%s through nginx: not controlled by the service worker", p)
		}
		if v.nav == "" || v.nav[0] != '{' {
			t.Errorf("%s through nginx: no report from the worker on the navigation: %s", p, v.nav)
		}
		t.Logf("%s: %s, %d bytes", p, v.loaded.Round(time.Millisecond), v.used)
	}

	// A visitor who enters through the seeder's nginx.
	seederTab := br.tab("seeder")
	recordLoadErrors(t, seederTab)
	navigate(t, seederTab, seederProxy.URL()+"/"+pages[0])
	waitFor(t, seederTab, "the seeder's service worker to be active", `navigator.serviceWorker.ready.then(r => r.active !== null)`, 30*time.Second)
	v := visitDocPage(t, seederTab, seederProxy.URL(), files, pages[1])
	if !eval[bool](t, seederTab, `navigator.serviceWorker.controller !== null`) {
		t.Fatalf("%s through the seeder's nginx: not controlled by the service worker", pages[1])
	}
	t.Logf("through the seeder's nginx: %s: %s, worker report %s", pages[1], v.loaded.Round(time.Millisecond), v.nav)
}
