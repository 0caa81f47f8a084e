package testbrowser

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/js/jsconfig"
	"github.com/hearthcdn/hearth/node"
	relayclient "github.com/hearthcdn/hearth/relay/client"
)

// TestSWRecordPush: root records pushed through the relay reach an open
// page's worker, and a navigation within the site's freshness bound does
// not wait for the origin's record. The origin's records go to the relay
// as `hearth origin --relay` sends them; the page's agent subscribes and
// passes them (and, while subscribed, repetitions of the latest) to the
// worker. A republish reaches the open page (its "hearth:root" event)
// without any navigation, before the origin is asked for a record; the
// navigations after it, one past the bound, are served from the new root
// with no record request to the origin at all.
func TestSWRecordPush(t *testing.T) {
	needBrowser(t)
	const maxStale = 3 * time.Second
	relayURL := startRelay(t)
	files := map[string][]byte{
		"index.html": []byte(`<!doctype html><script src="/.hearth/hearth.js" defer></script><p>v1</p>`),
		"data.txt":   []byte("version one"),
	}
	o := startOrigin(t, files, jsconfig.Config{Relays: []string{relayURL}, MaxStaleMS: int(maxStale / time.Millisecond)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rc, err := relayclient.New(relayclient.Config{URL: relayURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	push := func(rec *node.RootRecord) {
		t.Helper()
		if err := rc.PublishRecord(ctx, rec); err != nil {
			t.Fatalf("publishing record %d to the relay: %v", rec.Seq, err)
		}
	}
	push(o.origin.Feed().Latest())

	b := newBrowser(t)
	tab := b.ctx
	loadControlled(t, tab, o.URL+"/")
	navigate(t, tab, o.URL+"/")
	waitFor(t, tab, "the page agent to reach the relay", `hearth.agent.then(a => a.stats().peers >= 0)`, 30*time.Second)
	eval[bool](t, tab, `(window.roots = [], addEventListener('hearth:root', e => roots.push(e.detail.seq)), true)`)
	recordAsks := func() []string {
		var out []string
		for _, r := range o.requestLog() {
			if strings.Contains(r, "/record") {
				out = append(out, r)
			}
		}
		return out
	}

	o.resetCounts()
	rec2 := o.publish(map[string][]byte{
		"index.html": []byte(`<!doctype html><script src="/.hearth/hearth.js" defer></script><p>v2</p>`),
		"data.txt":   []byte("version two"),
	})
	push(rec2)
	waitFor(t, tab, "the open page's worker to learn the new root through its agent",
		fmt.Sprintf(`roots.includes(%d)`, rec2.Seq), maxStale+time.Second)
	if asks := recordAsks(); len(asks) > 0 {
		t.Fatalf("the worker asked the origin for the record before the push reached it: %v", asks)
	}

	text := func() string { return eval[string](t, tab, `fetch('/data.txt').then(r => r.text())`) }
	check := func(when string) {
		t.Helper()
		navigate(t, tab, o.URL+"/")
		if got := eval[string](t, tab, `document.querySelector('p').textContent`); got != "v2" {
			t.Errorf("%s: the page is %q, want v2", when, got)
		}
		if got := text(); got != "version two" {
			t.Errorf("%s: data.txt %q, want version two", when, got)
		}
		if asks := recordAsks(); len(asks) > 0 {
			t.Errorf("%s: the navigation asked the origin for the record: %v", when, asks)
		}
	}
	check("a navigation after the push")
	// Past the bound since the push: the agent's repetitions of the
	// latest record keep it known to be the latest.
	time.Sleep(maxStale + 500*time.Millisecond)
	check("a navigation past the bound")
}
