package jsconfig

import (
	"crypto/ed25519"
	"errors"
	"testing"

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
	for _, bad := range []string{
		`{"site":"nope"}`,
		`{"site":"` + site + `","scope":"x/"}`,
		`{"site":"` + site + `","prefixes":["a"]}`,
		`{"site":"` + site + `","relays":["http://x"]}`,
		`{"site":"` + site + `","cacheMiB":-1}`,
		`{"site":`,
	} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrBadConfig) && !errors.Is(err, node.ErrBadSiteID) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
