package testbrowser

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/js/jsconfig"
)

// imageSite builds an image-heavy manual, published unmodified: pages in
// one flat directory, each showing 12–40 PNG screenshots of its own and a
// few shared ones, a shared stylesheet that pulls a web font and a
// background image. It returns the files and the pages in visiting order.
func imageSite(t testing.TB, pages int) (map[string][]byte, []string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, uint64(pages)))
	files := map[string][]byte{
		"style.css": []byte("@font-face{font-family:M;src:url(fonts/m.woff2) format('woff2')}\n" +
			"body{font-family:M,sans-serif;background:url(img/bg.png)}\nimg{max-width:20%}\n"),
		"fonts/m.woff2": randomBytes(t, 48<<10),
		"img/bg.png":    randomPNG(t, 24<<10),
		"favicon.ico":   randomPNG(t, 1<<10),
	}
	for i := range 4 {
		files[fmt.Sprintf("img/shared%d.png", i)] = randomPNG(t, 16<<10)
	}
	var order []string
	for p := range pages {
		name := fmt.Sprintf("page%03d.html", p)
		var b strings.Builder
		fmt.Fprintf(&b, "<!doctype html><html><head><meta charset=utf-8><title>Page %d</title><link rel=stylesheet href=style.css></head><body><div role=main><h1>Page %d</h1>", p, p)
		for i := range 4 {
			fmt.Fprintf(&b, `<img src="img/shared%d.png" alt="">`, i)
		}
		n := 12 + rng.IntN(29)
		for i := range n {
			img := fmt.Sprintf("img/p%03d-%02d.png", p, i)
			files[img] = randomPNG(t, 8<<10+rng.IntN(56<<10))
			fmt.Fprintf(&b, "<p>Step %d of page %d.</p><img src=%q alt=\"\">", i, p, img)
		}
		if p+1 < pages {
			fmt.Fprintf(&b, `<a href="page%03d.html">next</a>`, p+1)
		}
		b.WriteString("</div></body></html>")
		files[name] = []byte(b.String())
		order = append(order, name)
	}
	return files, order
}

// TestAcceptanceImageSite visits an image-heavy site in one tab, nothing
// else open, with an origin and two seeders: every page and image is
// byte-identical, none fails, and from the second page on at least 95% of
// the static bytes come from the seeders, counted at the origin.
func TestAcceptanceImageSite(t *testing.T) {
	needBrowser(t)
	files, pages := imageSite(t, 12)
	relayURL := startRelay(t)
	o := startOrigin(t, files, jsconfig.Config{Relays: []string{relayURL}})
	root := o.origin.Feed().Latest().Root
	var seeded atomic.Int64
	for range 2 {
		r := copyStore(t, o.store.MemStore)
		startSeeder(t, relayURL, o.site, countingGetter(r, &seeded), root, false)
	}
	b := newBrowser(t)
	tab := b.ctx
	recordLoadErrors(t, tab)
	openTabWithAgent(t, tab, o.URL+"/"+pages[0])
	checkDocPage(t, tab, files, pages[0], false)
	o.resetCounts()
	seeded.Store(0)
	var used int64
	for _, p := range pages[1:] {
		v := visitDocPage(t, tab, o.URL, files, p)
		used += v.used
		t.Logf("%-12s loaded in %5v; origin static %d, seeders %d so far; navigation: %s",
			p, v.loaded.Round(time.Millisecond), o.gateway.Load()+o.files.Load(), seeded.Load(), v.nav)
	}
	originStatic, fromSeeders := o.gateway.Load()+o.files.Load(), seeded.Load()
	share := float64(fromSeeders) / float64(max(fromSeeders+originStatic, 1))
	t.Logf("OFFLOAD pages 2-%d: %.1f%% of the static bytes sent by seeders and origin came from the seeders (%d of %d); %d site bytes used",
		len(pages), 100*share, fromSeeders, fromSeeders+originStatic, used)
	if share < 0.95 {
		t.Errorf("%.1f%% from the seeders, want ≥ 95%%; origin requests: %v", 100*share, o.requestLog())
	}
}
