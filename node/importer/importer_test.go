package importer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
)

// Published IPFS vectors (`ipfs add --cid-version=1 --raw-leaves`, SHA2-256),
// which pin our encoding to Kubo's byte for byte.
func TestKnownIPFSVectors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "hello"), []byte("hello world"))
	write(t, filepath.Join(dir, "empty"), nil)
	if err := os.Mkdir(filepath.Join(dir, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"hello":    "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
		"empty":    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
		"emptydir": "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354",
	} {
		im := importer.New(node.NewMemStore(), importer.Options{HashCode: mh.SHA2_256})
		got, err := im.ImportPath(ctx, filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != want {
			t.Errorf("%s: got %s, want %s", name, got, want)
		}
	}
}

func write(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestFileShapes(t *testing.T) {
	ctx := context.Background()
	const chunk = node.ChunkSize
	cases := []struct {
		name      string
		size      int
		codec     uint64
		rootLinks int
		depth     int
	}{
		{"empty", 0, node.CodecRaw, 0, 0},
		{"one byte", 1, node.CodecRaw, 0, 0},
		{"one chunk", chunk, node.CodecRaw, 0, 0},
		{"one chunk plus one", chunk + 1, node.CodecDagPB, 2, 1},
		{"full first level", node.MaxLinks * chunk, node.CodecDagPB, node.MaxLinks, 1},
		{"two levels", node.MaxLinks*chunk + 1, node.CodecDagPB, 2, 2},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := randBytes(tc.size, uint64(i))
			bs := node.NewMemStore()
			root, err := importer.New(bs, importer.Options{}).ImportReader(ctx, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if root.Type() != tc.codec {
				t.Fatalf("root codec 0x%x, want 0x%x", root.Type(), tc.codec)
			}
			if p := root.Prefix(); p.Version != 1 || p.MhType != node.HashBlake3 || p.MhLength != 32 {
				t.Fatalf("root prefix %+v", p)
			}
			n, err := node.Resolve(ctx, bs, root, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(n.Links) != tc.rootLinks {
				t.Fatalf("root has %d links, want %d", len(n.Links), tc.rootLinks)
			}
			if n.FileSize != uint64(tc.size) {
				t.Fatalf("filesize %d, want %d", n.FileSize, tc.size)
			}
			if d := depth(t, bs, root); d != tc.depth {
				t.Fatalf("depth %d, want %d", d, tc.depth)
			}
			checkLeaves(t, bs, root)
			var out bytes.Buffer
			if err := node.WriteFile(ctx, bs, n, 0, n.FileSize, &out); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Fatal("read back differs")
			}
			// A range across a chunk boundary reads exactly those bytes.
			if tc.size > chunk+10 {
				out.Reset()
				s, e := uint64(chunk-5), uint64(chunk+7)
				if err := node.WriteFile(ctx, bs, n, s, e, &out); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out.Bytes(), data[s:e]) {
					t.Fatal("range read differs")
				}
				segs, err := node.FileSegments(ctx, bs, n, s, e)
				if err != nil {
					t.Fatal(err)
				}
				if len(segs) != 2 || segs[0].Offset != chunk-5 || segs[0].Len != 5 || segs[1].Offset != 0 || segs[1].Len != 7 {
					t.Fatalf("segments %+v", segs)
				}
			}
		})
	}
}

func depth(t *testing.T, g node.Getter, c cid.Cid) int {
	n, _, err := node.GetNode(context.Background(), g, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Links) == 0 {
		return 0
	}
	return 1 + depth(t, g, n.Links[0].Cid)
}

// checkLeaves requires every leaf to be a raw block of at most one chunk,
// and every interior node to have at most MaxLinks links.
func checkLeaves(t *testing.T, g node.Getter, c cid.Cid) {
	n, raw, err := node.GetNode(context.Background(), g, c)
	if err != nil {
		t.Fatal(err)
	}
	if n.Kind == node.KindRaw {
		if len(raw) > node.ChunkSize {
			t.Fatalf("leaf of %d bytes", len(raw))
		}
		return
	}
	if len(n.Links) > node.MaxLinks {
		t.Fatalf("%d links", len(n.Links))
	}
	for _, l := range n.Links {
		if l.Cid.Type() == node.CodecDagPB || len(n.Links) > 0 {
			checkLeaves(t, g, l.Cid)
		}
	}
}

// compareTree checks that the DAG at root holds exactly the tree at dir
// (following symlinks), byte for byte, and that directory links are sorted.
// listDir returns the entries of dir sorted by name.
func listDir(t *testing.T, g node.Getter, dir *node.Node) []node.Entry {
	t.Helper()
	var ents []node.Entry
	for e, err := range node.Entries(context.Background(), g, dir) {
		if err != nil {
			t.Fatal(err)
		}
		ents = append(ents, e)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	return ents
}

func compareTree(t *testing.T, g node.Getter, root cid.Cid, dir string) int {
	t.Helper()
	ctx := context.Background()
	n, _, err := node.GetNode(ctx, g, root)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() {
		want, err := os.ReadFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := node.WriteFile(ctx, g, n, 0, n.FileSize, &got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("%s differs", dir)
		}
		return 1
	}
	if n.Kind == node.KindDirectory && !sort.SliceIsSorted(n.Links, func(i, j int) bool { return n.Links[i].Name < n.Links[j].Name }) {
		t.Fatalf("%s: links not sorted", dir)
	}
	ents := listDir(t, g, n)
	fsEnts, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(fsEnts) {
		t.Fatalf("%s: %d entries, want %d", dir, len(ents), len(fsEnts))
	}
	files := 0
	for i, e := range ents {
		if e.Name != fsEnts[i].Name() {
			t.Fatalf("%s: entry %d is %q, want %q", dir, i, e.Name, fsEnts[i].Name())
		}
		files += compareTree(t, g, e.Cid, filepath.Join(dir, e.Name))
	}
	return files
}

func TestTrees(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	write(t, filepath.Join(src, ".hidden"), []byte("dot-file"))
	write(t, filepath.Join(src, ".dotdir", "x"), []byte("in a dot-dir"))
	write(t, filepath.Join(src, "ünïcødé-名前-🔥.txt"), []byte("unicode"))
	write(t, filepath.Join(src, "Zeta"), []byte("capital sorts first"))
	write(t, filepath.Join(src, "alpha"), []byte("alpha"))
	if err := os.MkdirAll(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	deep := src
	for i := 0; i < 40; i++ {
		deep = filepath.Join(deep, fmt.Sprintf("d%d", i))
	}
	write(t, filepath.Join(deep, "bottom"), []byte("deep"))
	// Symlinks, including ones pointing out of the tree, are followed.
	outside := filepath.Join(dir, "outside")
	write(t, filepath.Join(outside, "lib.js"), []byte("var x = 1;"))
	if err := os.Symlink(filepath.Join(outside, "lib.js"), filepath.Join(src, "link.js")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(src, "linkdir")); err != nil {
		t.Fatal(err)
	}
	bs := node.NewMemStore()
	root, err := importer.New(bs, importer.Options{}).ImportPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if files := compareTree(t, bs, root, src); files != 8 {
		t.Fatalf("compared %d files, want 8", files)
	}
	// Importing twice gives the same root: the CID depends only on content.
	root2, err := importer.New(node.NewMemStore(), importer.Options{}).ImportPath(ctx, src)
	if err != nil || !root2.Equals(root) {
		t.Fatalf("reimport: %v %s != %s", err, root2, root)
	}
	// Empty directory: a dag-pb directory with no links.
	n, err := node.Resolve(ctx, bs, root, []string{"empty"})
	if err != nil || n.Kind != node.KindDirectory || len(n.Links) != 0 {
		t.Fatalf("empty dir: %v %+v", err, n)
	}
}

func TestBadSources(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	im := importer.New(node.NewMemStore(), importer.Options{})
	if _, err := im.ImportPath(ctx, filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing source: %v", err)
	}
	loop := filepath.Join(dir, "loop")
	write(t, filepath.Join(loop, "a", "f"), []byte("x"))
	if err := os.Symlink(loop, filepath.Join(loop, "a", "back")); err != nil {
		t.Fatal(err)
	}
	if _, err := im.ImportPath(ctx, loop); !errors.Is(err, importer.ErrSymlinkLoop) {
		t.Fatalf("symlink loop: %v", err)
	}
	dangling := filepath.Join(dir, "dangling")
	write(t, filepath.Join(dangling, "ok"), []byte("x"))
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dangling, "bad")); err != nil {
		t.Fatal(err)
	}
	if _, err := im.ImportPath(ctx, dangling); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("dangling symlink: %v", err)
	}
	if os.Geteuid() != 0 { // root reads anything
		unreadable := filepath.Join(dir, "unreadable")
		write(t, filepath.Join(unreadable, "secret"), []byte("x"))
		if err := os.Chmod(filepath.Join(unreadable, "secret"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := im.ImportPath(ctx, unreadable); !errors.Is(err, os.ErrPermission) {
			t.Fatalf("unreadable: %v", err)
		}
	}
}

func TestHAMTShardedDirectory(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	// ~4,000 entries of 60-byte names pass Kubo's 256 KiB estimate.
	const n = 4000
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("entry-%05d-%s", i, strings.Repeat("x", 48))
		write(t, filepath.Join(src, name), []byte(name))
	}
	bs := node.NewMemStore()
	root, err := importer.New(bs, importer.Options{}).ImportPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	rn, err := node.Resolve(ctx, bs, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rn.Kind != node.KindHAMTShard || rn.Fanout != 256 {
		t.Fatalf("root is a %s with fanout %d, want a HAMT shard of 256", rn.Kind, rn.Fanout)
	}
	ents := listDir(t, bs, rn)
	if len(ents) != n {
		t.Fatalf("listed %d entries, want %d", len(ents), n)
	}
	for i := 0; i < n; i += 97 {
		name := fmt.Sprintf("entry-%05d-%s", i, strings.Repeat("x", 48))
		f, err := node.Resolve(ctx, bs, root, []string{name})
		if err != nil {
			t.Fatalf("resolving %s: %v", name, err)
		}
		if string(f.Data) != name {
			t.Fatalf("%s holds %q", name, f.Data)
		}
	}
	if _, err := node.Resolve(ctx, bs, root, []string{"absent"}); !errors.Is(err, node.ErrNoSuchPath) {
		t.Fatalf("absent name: %v", err)
	}
	// A small directory is not sharded.
	small := t.TempDir()
	write(t, filepath.Join(small, "a"), []byte("a"))
	sr, _ := importer.New(bs, importer.Options{}).ImportPath(ctx, small)
	if sn, _ := node.Resolve(ctx, bs, sr, nil); sn.Kind != node.KindDirectory {
		t.Fatalf("small dir is a %s", sn.Kind)
	}
}

// cancellingReader reads n zero bytes and calls cancel once after the
// first read.
type cancellingReader struct {
	n      int64
	cancel context.CancelFunc
}

func (r *cancellingReader) Read(p []byte) (int, error) {
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), r.n)
	clear(p[:k])
	r.n -= k
	return int(k), nil
}

// An import stops with the context's error once it ends, in the middle of
// a file, without reading the file to its end.
func TestImportStopsMidFile(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancellingReader{n: 64 << 20, cancel: cancel}
	if _, err := importer.New(node.NewMemStore(), importer.Options{}).ImportReader(ctx, r); !errors.Is(err, context.Canceled) {
		t.Fatalf("import after cancel: %v, want context.Canceled", err)
	}
	if r.n < 60<<20 {
		t.Fatalf("read %d bytes after the context ended", 64<<20-r.n)
	}
}
