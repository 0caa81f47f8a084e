package testbrowser

import (
	"testing"
	"time"

	"github.com/hearthcdn/hearth/js/jsconfig"
)

// TestSeedingConsent: the operator's switch only makes tab seeding
// possible; the visitor turns it on through hearth.seed, and the choice
// persists across pages; without the switch, hearth.seed changes nothing.
func TestSeedingConsent(t *testing.T) {
	needBrowser(t)
	files, _ := pageSite(t, 2)
	relayURL := startRelay(t)
	for _, allowed := range []bool{true, false} {
		o := startOrigin(t, files, jsconfig.Config{Relays: []string{relayURL}, TabSeeding: allowed})
		startSeeder(t, relayURL, o.site, o.store.MemStore, o.origin.Feed().Latest().Root, false)
		b := newBrowser(t)
		openTabWithAgent(t, b.ctx, o.URL+"/")
		if eval[bool](t, b.ctx, `hearth.agent.then(a => a.stats().seeding)`) {
			t.Fatalf("allowed=%v: the tab seeds before the visitor said yes", allowed)
		}
		if got := eval[bool](t, b.ctx, `hearth.canSeed`); got != allowed {
			t.Errorf("hearth.canSeed = %v, want %v", got, allowed)
		}
		if ok := eval[bool](t, b.ctx, `hearth.seed(true)`); ok != allowed {
			t.Errorf("allowed=%v: hearth.seed(true) = %v", allowed, ok)
		}
		if !allowed {
			if eval[bool](t, b.ctx, `hearth.agent.then(a => a.stats().seeding) || hearth.seeding()`) {
				t.Errorf("the tab seeds although the operator did not allow it")
			}
			continue
		}
		waitFor(t, b.ctx, "the tab to seed once the visitor said yes", `hearth.agent.then(a => a.stats().seeding === true)`, 30*time.Second)
		// Another page of the site: the choice holds.
		openTabWithAgent(t, b.ctx, o.URL+"/")
		if !eval[bool](t, b.ctx, `hearth.seeding()`) {
			t.Fatalf("the visitor's yes did not persist to the next page")
		}
		waitFor(t, b.ctx, "the next page's agent to seed", `hearth.agent.then(a => a.stats().seeding === true)`, 30*time.Second)
		eval[bool](t, b.ctx, `hearth.seed(false)`)
		openTabWithAgent(t, b.ctx, o.URL+"/")
		if eval[bool](t, b.ctx, `hearth.seeding() || hearth.agent.then(a => a.stats().seeding)`) {
			t.Errorf("the visitor's no did not persist")
		}
	}
}
