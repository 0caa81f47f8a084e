//go:build linux

package harness_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/node/importer"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// pyDocs is the Python documentation of Debian's python3-doc: 67 MB in
// about 1,100 files.
const pyDocs = "/usr/share/doc/python3.11/html"

func needDocs(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(pyDocs); err != nil {
		t.Skipf("python3-doc is not installed (%v)", err)
	}
}

// importInto imports dir into ms and returns its root.
func importInto(t *testing.T, ms *node.MemStore, dir string) cid.Cid {
	t.Helper()
	root, err := importer.New(ms, importer.Options{}).ImportPath(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// storeContents stops nothing: it opens a stopped node's store and
// returns its blocks and its pin keys.
func storeContents(t *testing.T, dir string) (map[string][]byte, []string) {
	t.Helper()
	st, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	blocks := map[string][]byte{}
	for c, err := range st.AllKeys(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		d, err := st.Get(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		blocks[c.KeyString()] = d
	}
	var pins []string
	for k := range st.MetaPrefix("pin/") {
		pins = append(pins, k)
	}
	return blocks, pins
}

func urls(ps []*harness.Proc) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.URL())
	}
	return strings.Join(s, ",")
}

// The Python docs published; three seeders replicate them; a page changes;
// the origin goes away and the site is still there.
func TestPythonDocs(t *testing.T) {
	needDocs(t)
	src := filepath.Join(t.TempDir(), "site")
	harness.CopyTree(t, pyDocs, src)
	key := harness.NewKey(t)
	origin := harness.StartOrigin(t, key, src, "--watch", "--debounce", "200ms")

	ms := node.NewMemStore()
	root1 := importInto(t, ms, src)
	rec, err := gateway.FetchRecord(context.Background(), nil, origin.URL(), key.Site)
	if err != nil || rec.Seq != 1 || !rec.Root.Equals(root1) {
		t.Fatalf("origin record %v (%v), want seq 1 root %s", rec, err, root1)
	}
	v1 := harness.DAGBlocks(t, ms, root1)

	var seeders []*harness.Proc
	for i := range 3 {
		seeders = append(seeders, harness.StartSeeder(t, fmt.Sprintf("seeder%d", i+1), key.Site, origin.URL()))
	}
	for _, s := range seeders {
		s.WaitMetric("hearth_pinned_sequence", 60*time.Second, func(v float64) bool { return v == 1 })
	}

	t.Run("ThreeSeedersHoldIdenticalBlocks", func(t *testing.T) {
		for _, s := range seeders {
			s.Stop()
			blocks, pins := storeContents(t, s.StorePath())
			if len(blocks) != len(v1) {
				t.Errorf("%s holds %d blocks, the DAG has %d", s.Name, len(blocks), len(v1))
			}
			for k, b := range v1 {
				if !bytes.Equal(blocks[k], b.Data) {
					t.Fatalf("%s: block %s differs or is missing", s.Name, b.Cid)
				}
			}
			want := fmt.Sprintf("pin/%s/%020d", key.Site, 1)
			if len(pins) != 1 || pins[0] != want {
				t.Errorf("%s pins %v, want [%s]", s.Name, pins, want)
			}
			s.Restart()
			if code, h, err := s.Health(); code != 200 || err != nil {
				t.Fatalf("%s after restart: %d %v %v", s.Name, code, h, err)
			}
		}
	})

	t.Run("ChangedPageFetchesOnlyChangedBlocks", func(t *testing.T) {
		blocksBefore := make([]float64, len(seeders))
		bytesBefore := make([]float64, len(seeders))
		for i, s := range seeders {
			blocksBefore[i] = s.Metric("hearth_replicated_blocks_total")
			bytesBefore[i] = s.Metric("hearth_replicated_bytes_total")
		}
		page := filepath.Join(src, "library", "os.html")
		f, err := os.OpenFile(page, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "\n<!-- changed at %s -->\n", time.Now())
		f.Close()

		root2 := importInto(t, ms, src)
		var changed, changedBytes int
		for k, b := range harness.DAGBlocks(t, ms, root2) {
			if _, ok := v1[k]; !ok {
				changed++
				changedBytes += len(b.Data)
			}
		}
		t.Logf("the change touches %d of %d blocks (%d bytes)", changed, len(v1), changedBytes)

		// The seeders hear of the new root within a second of the origin signing it.
		var t0 time.Time
		harness.Eventually(t, 30*time.Second, func() (bool, string) {
			r, err := gateway.FetchRecord(context.Background(), nil, origin.URL(), key.Site)
			if err != nil || r.Seq < 2 {
				return false, fmt.Sprintf("origin record %v %v", r, err)
			}
			if !r.Root.Equals(root2) {
				t.Fatalf("origin published %s, want %s", r.Root, root2)
			}
			t0 = time.Now()
			return true, ""
		})
		for _, s := range seeders {
			s.WaitMetric("hearth_record_sequence", 5*time.Second, func(v float64) bool { return v == 2 })
		}
		if d := time.Since(t0); d > time.Second {
			t.Errorf("the seeders learnt of the new root %s after the origin published it", d)
		}
		for i, s := range seeders {
			s.WaitMetric("hearth_pinned_sequence", 30*time.Second, func(v float64) bool { return v == 2 })
			db := s.Metric("hearth_replicated_blocks_total") - blocksBefore[i]
			dB := s.Metric("hearth_replicated_bytes_total") - bytesBefore[i]
			if int(db) != changed || int(dB) != changedBytes {
				t.Errorf("%s fetched %v blocks (%v bytes), want exactly the %d changed (%d bytes)", s.Name, db, dB, changed, changedBytes)
			}
		}
	})

	t.Run("OriginDownGetFromSeeders", func(t *testing.T) {
		origin.Stop()
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		_, stderr, err := harness.Run(t, dir, 2*time.Minute, "get", "--store", filepath.Join(dir, "store"),
			"--from", urls(seeders), key.Site.String(), "-o", out)
		if err != nil {
			t.Fatalf("get: %v\n%s", err, stderr)
		}
		harness.SameTree(t, src, out)
		// One page, to stdout.
		stdout, stderr, err := harness.Run(t, dir, time.Minute, "get", "--store", filepath.Join(dir, "store2"),
			"--from", urls(seeders), key.Site.String()+"/library/os.html")
		want, _ := os.ReadFile(filepath.Join(src, "library", "os.html"))
		if err != nil || stdout != string(want) {
			t.Fatalf("get one page: %v, %d bytes\n%s", err, len(stdout), stderr)
		}
	})
}

// A seeder killed mid-replication resumes without downloading again what
// it had stored, and never reports the half-replicated root as pinned.
func TestSeederResumesAfterKill(t *testing.T) {
	needDocs(t)
	key := harness.NewKey(t)
	origin := harness.StartOrigin(t, key, pyDocs)
	ms, root := harness.ImportDir(t, pyDocs)
	all := harness.DAGBlocks(t, ms, root)

	s := harness.StartSeeder(t, "seeder", key.Site, origin.URL(), "--max-rate", "16MiB", "--concurrency", "4")
	args := s.Args()
	s.WaitMetric("hearth_replicated_bytes_total", 30*time.Second, func(v float64) bool { return v >= 24<<20 })
	s.Kill()

	blocks, pins := storeContents(t, s.StorePath())
	if len(pins) != 0 {
		t.Fatalf("a half-replicated root was pinned: %v", pins)
	}
	present := 0
	for k := range blocks {
		if _, ok := all[k]; !ok {
			t.Fatalf("stored block %q is not in the DAG", k)
		}
		present++
	}
	if present == 0 || present == len(all) {
		t.Fatalf("killed with %d of %d blocks stored: not mid-replication", present, len(all))
	}
	t.Logf("killed with %d of %d blocks stored", present, len(all))

	s.SetArgs(slicesWithout(args, "--max-rate", "16MiB")...)
	s.Restart()
	s.WaitMetric("hearth_pinned_sequence", 60*time.Second, func(v float64) bool { return v == 1 })
	if got := s.Metric("hearth_replicated_blocks_total"); int(got) != len(all)-present {
		t.Fatalf("after restart fetched %v blocks, want the %d missing", got, len(all)-present)
	}
	s.Stop()
	blocks, pins = storeContents(t, s.StorePath())
	if len(blocks) != len(all) || len(pins) != 1 {
		t.Fatalf("finally %d blocks (want %d), pins %v", len(blocks), len(all), pins)
	}
}

func slicesWithout(args []string, drop ...string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if i+1 < len(args) && args[i] == drop[0] && args[i+1] == drop[1] {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// smallSite is a quick site: pages, a multi-leaf file, nested directories.
func smallSite() map[string][]byte {
	files := map[string][]byte{
		"index.html": []byte("<!doctype html><p>hello"),
		"big.bin":    bytes.Repeat([]byte("0123456789abcdef"), 3*node.ChunkSize/16+100),
	}
	for i := range 20 {
		files[fmt.Sprintf("pages/p%02d.html", i)] = []byte(strings.Repeat(fmt.Sprintf("page %d ", i), 100))
	}
	return files
}

// A seeder that serves a corrupt block is detected, dropped, and the
// block is fetched elsewhere: by hearth get and by another seeder.
func TestCorruptSeederDetected(t *testing.T) {
	src := t.TempDir()
	harness.WriteTree(t, src, smallSite())
	ms, root := harness.ImportDir(t, src)
	big, err := node.Resolve(context.Background(), ms, root, []string{"big.bin"})
	if err != nil {
		t.Fatal(err)
	}
	target := big.Links[1].Cid
	targetData, _ := ms.Get(context.Background(), target)

	key := harness.NewKey(t)
	origin := harness.StartOrigin(t, key, src)
	good := harness.StartSeeder(t, "good", key.Site, origin.URL())
	liar := harness.StartSeeder(t, "liar", key.Site, origin.URL(), "--testing-corrupt", target.String())
	for _, s := range []*harness.Proc{good, liar} {
		s.WaitMetric("hearth_pinned_sequence", 30*time.Second, func(v float64) bool { return v == 1 })
	}
	origin.Stop()

	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	_, stderr, err := harness.Run(t, dir, time.Minute, "get", "--store", filepath.Join(dir, "store"),
		"--from", liar.URL()+","+good.URL(), key.Site.String(), "-o", out)
	if err != nil {
		t.Fatalf("get: %v\n%s", err, stderr)
	}
	harness.SameTree(t, src, out)
	for _, want := range []string{"dropping source", liar.URL(), target.String(), "does not match its CID"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("get's log lacks %q:\n%s", want, stderr)
		}
	}

	// A site nobody serves: a clear error.
	_, stderr, err = harness.Run(t, dir, time.Minute, "get", "--store", filepath.Join(dir, "store"),
		"--from", good.URL(), harness.NewKey(t).Site.String())
	if err == nil || !strings.Contains(stderr, "the source has no record for this site") {
		t.Errorf("unknown site: %v\n%s", err, stderr)
	}

	// A seeder whose origin is the liar takes the block from its peer.
	third := harness.StartSeeder(t, "third", key.Site, liar.URL(), "--peers", good.URL())
	third.WaitMetric("hearth_pinned_sequence", 30*time.Second, func(v float64) bool { return v == 1 })
	if got := third.Metric("hearth_sources_dropped_total"); got != 1 {
		t.Errorf("third dropped %v sources, want 1", got)
	}
	code, body, err := third.Get("/ipfs/" + target.String() + "?format=raw")
	if err != nil || code != 200 || !bytes.Equal(body, targetData) {
		t.Fatalf("third serves the block: %d %v", code, err)
	}
}
