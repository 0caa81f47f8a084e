//go:build !js

package gateway_test

import (
	"testing"

	"github.com/hearthcdn/hearth/internal/dagtest"
)

// A file of ten distinct blocks claiming 3.1e17 bytes is served as a CAR
// at the cost of its distinct blocks, whatever the scope or range.
func TestTrustlessFileBomb(t *testing.T) {
	d := dagtest.NewBuilder()
	root, distinct := d.FileBomb()
	cg := &dagtest.CountingGetter{G: d.Store, Budget: 1 << 62}
	srv, _ := serveStore(t, cg)
	for _, q := range []string{"dag-scope=entity", "dag-scope=all", "entity-bytes=1000000:1000000000000", "entity-bytes=-5000:*"} {
		t.Run(q, func(t *testing.T) {
			cg.Gets.Store(0)
			// Each distinct block once, and the few holding the range's
			// ends once per level.
			cg.Budget = int64(4 * distinct)
			resp, body := get(t, srv.URL+"/ipfs/"+root.String()+"?format=car&"+q)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got := readCAR(t, body); len(got) != distinct {
				t.Fatalf("CAR of %d blocks after %d reads, want the %d distinct ones", len(got), cg.Gets.Load(), distinct)
			}
		})
	}
}
