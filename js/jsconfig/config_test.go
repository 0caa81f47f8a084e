package jsconfig

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/node"
)

func TestParse(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	site := node.SiteIDOf(pub).String()
	c, err := Parse([]byte(`{"site":"` + site + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Scope != "/" || len(c.Prefixes) != 1 || c.Prefixes[0] != "/" || c.CacheMiB != DefaultCacheMiB || c.TabSeeding {
		t.Fatalf("defaults: %+v", c)
	}
	if c.MaxStale() != DefaultMaxStaleMS*time.Millisecond {
		t.Errorf("default freshness bound %v", c.MaxStale())
	}
	// -1 (none) survives a round trip: the origin serves the normalized
	// configuration and the worker normalizes it again.
	none, err := Parse([]byte(`{"site":"` + site + `","maxStaleMs":-1}`))
	if err != nil || none.MaxStale() != 0 {
		t.Fatalf("maxStaleMs -1: %v %v", none.MaxStale(), err)
	}
	b, _ := json.Marshal(none)
	if again, err := Parse(b); err != nil || again.MaxStale() != 0 {
		t.Errorf("maxStaleMs -1 after a round trip: %v %v", again.MaxStale(), err)
	}
	for _, bad := range []string{
		`{"site":"nope"}`,
		`{"site":"` + site + `","scope":"x/"}`,
		`{"site":"` + site + `","prefixes":["a"]}`,
		`{"site":"` + site + `","relays":["http://x"]}`,
		`{"site":"` + site + `","cacheMiB":-1}`,
		`{"site":"` + site + `","maxStaleMs":-2}`,
		`{"site":`,
	} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrBadConfig) && !errors.Is(err, node.ErrBadSiteID) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
