package origin_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
	"github.com/hearthcdn/hearth/node/origin"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// BenchmarkRepublishRetain republishes a copy of the Python docs
// (python3-doc) into pebble with one file changed each time, and reports
// what keeping the store collected costs (origin.Retain: pin, unpin past
// Keep 1, collect) next to the import it follows, in the same run: "walk"
// as the origin does after its first publish, "full" scanning the store.
func BenchmarkRepublishRetain(b *testing.B) {
	const src = "/usr/share/doc/python3.11/html"
	if _, err := os.Stat(src); err != nil {
		b.Skipf("python3-doc not installed: %v", err)
	}
	dir := b.TempDir()
	// A copy with its symlinks resolved (they point outside the tree).
	if out, err := exec.Command("cp", "-rL", src+"/.", dir).CombinedOutput(); err != nil {
		b.Fatalf("copying the docs: %v: %s", err, out)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for _, full := range []bool{false, true} {
		b.Run(map[bool]string{false: "walk", true: "full"}[full], func(b *testing.B) { republish(b, dir, key, full) })
	}
}

func republish(b *testing.B, dir string, key ed25519.PrivateKey, full bool) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		st, err := pebblestore.Open(b.TempDir(), pebblestore.Options{ReserveBytes: -1})
		if err != nil {
			b.Fatal(err)
		}
		log := node.NewRecordLog(st)
		var imp, ret time.Duration
		var deleted, kept int
		const rounds = 4
		for r := 0; r <= rounds; r++ {
			if err := os.WriteFile(filepath.Join(dir, "index.html"), fmt.Appendf(nil, "<p>revision %d</p>", r), 0o644); err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			root, err := importer.New(st, importer.Options{}).ImportPath(ctx, dir)
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			rec, err := log.SignNext(key, root, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			rs, err := origin.Retain(ctx, st, rec, origin.RetainOptions{Keep: 1, KeepFor: time.Nanosecond, Full: full})
			if err != nil {
				b.Fatal(err)
			}
			if r > 0 { // the first publish imports into an empty store
				imp += t1.Sub(t0)
				ret += time.Since(t2)
				deleted += rs.Deleted
				kept = rs.Kept
			}
		}
		st.Close()
		if deleted == 0 {
			b.Fatal("nothing collected: the old index.html and directory nodes should go")
		}
		b.ReportMetric(float64(imp.Milliseconds())/rounds, "import-ms/op")
		b.ReportMetric(float64(ret.Milliseconds())/rounds, "retain-ms/op")
		b.ReportMetric(ret.Seconds()/imp.Seconds(), "retain/import")
		if full {
			b.ReportMetric(float64(kept), "blocks-kept")
		}
		b.ReportMetric(float64(deleted)/rounds, "blocks-deleted/op")
	}
}
