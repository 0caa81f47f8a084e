package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
)

// site builds a small site: index.html, a 3-chunk file and a subdirectory.
func site(t testing.TB) (*node.MemStore, cid.Cid, []byte) {
	t.Helper()
	dir := t.TempDir()
	big := make([]byte, 3*node.ChunkSize+100)
	for i := range big {
		big[i] = byte(i*7 + i/node.ChunkSize)
	}
	files := map[string][]byte{
		"index.html":      []byte("<h1>hi</h1>"),
		"media/video.bin": big,
		"docs/a.txt":      []byte("aaa"),
		"docs/b.txt":      []byte("bbb"),
	}
	for p, d := range files {
		fp := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fp, d, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bs := node.NewMemStore()
	root, err := importer.New(bs, importer.Options{}).ImportPath(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return bs, root, big
}

func collect(t *testing.T, g node.Getter, req node.Request) ([]node.Block, *node.Result) {
	t.Helper()
	var out []node.Block
	res, err := node.Traverse(context.Background(), g, req, func(b node.Block) error {
		out = append(out, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

func TestTraverseScopes(t *testing.T) {
	bs, root, big := site(t)
	all, _ := collect(t, bs, node.Request{Root: root, Scope: node.ScopeAll})
	if len(all) != bs.Len() {
		t.Fatalf("scope all gave %d blocks, store holds %d", len(all), bs.Len())
	}
	if !all[0].Cid.Equals(root) {
		t.Fatal("first block is not the root")
	}
	blk, res := collect(t, bs, node.Request{Root: root, Path: []string{"media", "video.bin"}, Scope: node.ScopeBlock})
	if len(blk) != 3 || res.Node.FileSize != uint64(len(big)) {
		t.Fatalf("scope block: %d blocks", len(blk))
	}
	ent, _ := collect(t, bs, node.Request{Root: root, Path: []string{"media", "video.bin"}, Scope: node.ScopeEntity})
	if len(ent) != 3+4 { // root, media, file node, 4 leaves
		t.Fatalf("scope entity: %d blocks", len(ent)-0)
	}
	// entity-bytes within the second chunk needs only that leaf.
	r := &node.ByteRange{From: node.ChunkSize + 10, To: node.ChunkSize + 20}
	rng, res := collect(t, bs, node.Request{Root: root, Path: []string{"media", "video.bin"}, Scope: node.ScopeEntity, Bytes: r})
	if len(rng) != 4 || res.Start != node.ChunkSize+10 || res.End != node.ChunkSize+21 {
		t.Fatalf("ranged entity: %d blocks, [%d,%d)", len(rng), res.Start, res.End)
	}
	// The last 100 bytes: negative from.
	tail, _ := collect(t, bs, node.Request{Root: root, Path: []string{"media", "video.bin"}, Scope: node.ScopeEntity, Bytes: &node.ByteRange{From: -100, ToEnd: true}})
	if len(tail) != 4 {
		t.Fatalf("tail range: %d blocks", len(tail))
	}
	if _, err := node.Traverse(context.Background(), bs, node.Request{Root: root, Path: []string{"nope"}}, func(node.Block) error { return nil }); !errors.Is(err, node.ErrNoSuchPath) {
		t.Fatalf("missing path: %v", err)
	}
	if _, err := node.Traverse(context.Background(), bs, node.Request{Root: root, Path: []string{"index.html", "x"}}, func(node.Block) error { return nil }); !errors.Is(err, node.ErrNotDir) {
		t.Fatalf("path through a file: %v", err)
	}
}

// A client verifying a CAR with the same traversal accepts what the server
// sends, and refuses a corrupt or reordered stream.
func TestTraverseVerifiesStream(t *testing.T) {
	bs, root, big := site(t)
	req := node.Request{Root: root, Path: []string{"media", "video.bin"}, Scope: node.ScopeEntity}
	sent, _ := collect(t, bs, req)

	replay := func(blocks []node.Block) (*node.MemStore, error) {
		i := 0
		src := node.NewStreamSource(func() (node.Block, error) {
			if i == len(blocks) {
				return node.Block{}, io.EOF
			}
			i++
			return blocks[i-1], nil
		})
		got := node.NewMemStore()
		_, err := node.Traverse(context.Background(), src, req, func(b node.Block) error {
			return got.Put(context.Background(), b.Cid, b.Data)
		})
		return got, err
	}
	got, err := replay(sent)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Resolve(context.Background(), got, root, []string{"media", "video.bin"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := node.WriteFile(context.Background(), got, n, 0, n.FileSize, &buf); err != nil || !bytes.Equal(buf.Bytes(), big) {
		t.Fatalf("verified copy differs: %v", err)
	}

	corrupt := append([]node.Block(nil), sent...)
	last := len(corrupt) - 1
	bad := bytes.Clone(corrupt[last].Data)
	bad[0] ^= 1
	corrupt[last] = node.Block{Cid: corrupt[last].Cid, Data: bad}
	if _, err := replay(corrupt); !errors.Is(err, node.ErrCorrupt) {
		t.Fatalf("corrupt block: %v", err)
	}

	swapped := append([]node.Block(nil), sent...)
	swapped[3], swapped[4] = swapped[4], swapped[3]
	if _, err := replay(swapped); !errors.Is(err, node.ErrUnexpectedBlock) {
		t.Fatalf("reordered stream: %v", err)
	}
	if _, err := replay(sent[:len(sent)-1]); !errors.Is(err, io.EOF) {
		t.Fatalf("truncated stream: %v", err)
	}
	// A valid block of another DAG in place of the expected one.
	other := node.Block{Cid: node.Sum(node.CodecRaw, []byte("other")), Data: []byte("other")}
	if _, err := replay(append(append([]node.Block(nil), sent[:2]...), other)); !errors.Is(err, node.ErrUnexpectedBlock) {
		t.Fatalf("foreign block: %v", err)
	}
}

func TestByteRangeBounds(t *testing.T) {
	for _, tc := range []struct {
		in         string
		size       uint64
		start, end uint64
	}{
		{"0:*", 10, 0, 10},
		{"0:0", 10, 0, 1},
		{"2:5", 10, 2, 6},
		{"-3:*", 10, 7, 10},
		{"-30:*", 10, 0, 10},
		{"5:100", 10, 5, 10},
		{"20:*", 10, 10, 10},
		{"0:-2", 10, 0, 9},
	} {
		r, err := node.ParseByteRange(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if s, e := r.Bounds(tc.size); s != tc.start || e != tc.end {
			t.Errorf("%s of %d: [%d,%d), want [%d,%d)", tc.in, tc.size, s, e, tc.start, tc.end)
		}
		if r.String() != tc.in {
			t.Errorf("String %q, want %q", r.String(), tc.in)
		}
	}
	for _, bad := range []string{"", "1", "a:b", "5:2", "1:*x"} {
		if _, err := node.ParseByteRange(bad); !errors.Is(err, node.ErrBadRange) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestVerifyingStore(t *testing.T) {
	ctx := context.Background()
	mem := node.NewMemStore()
	c := node.Sum(node.CodecRaw, []byte("good"))
	if err := mem.Put(ctx, c, []byte("evil")); err != nil {
		t.Fatal(err)
	}
	vs := node.NewVerifyingStore(mem)
	if _, err := vs.Get(ctx, c); !errors.Is(err, node.ErrCorrupt) {
		t.Fatalf("corrupt block read: %v", err)
	}
	if err := vs.Put(ctx, c, []byte("evil")); !errors.Is(err, node.ErrCorrupt) {
		t.Fatalf("corrupt block put: %v", err)
	}
	if _, err := vs.Get(ctx, node.Sum(node.CodecRaw, []byte("absent"))); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("absent: %v", err)
	}
}

func TestParseCID(t *testing.T) {
	good := node.Sum(node.CodecRaw, []byte("x"))
	if c, err := node.ParseCID(good.String()); err != nil || !c.Equals(good) {
		t.Fatalf("%v %s", err, c)
	}
	for _, bad := range []string{"", "bafy", "not a cid", "zzzz", good.String()[:20],
		"bafkqaaa", // identity multihash: not verifiable
	} {
		if _, err := node.ParseCID(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func ExampleTraverse() {
	bs := node.NewMemStore()
	data := []byte("hello")
	c := node.Sum(node.CodecRaw, data)
	_ = bs.Put(context.Background(), c, data)
	_, err := node.Traverse(context.Background(), bs, node.Request{Root: c, Scope: node.ScopeAll}, func(b node.Block) error {
		fmt.Println(b.Cid, len(b.Data))
		return nil
	})
	fmt.Println(err)
	// Output:
	// bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4 5
	// <nil>
}

// Walk (no re-hashing, for blocks verified before) emits exactly what
// Traverse emits, in the same order, for every scope and shape.
func TestWalkMatchesTraverse(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	big := make([]byte, 5*node.ChunkSize+77)
	for i := range big {
		big[i] = byte(i*31 + i/node.ChunkSize)
	}
	files := map[string][]byte{
		"a/b/big.bin": big,
		"zeros.bin":   make([]byte, 3*node.ChunkSize+5), // one leaf read many times
		"small.txt":   []byte("small"),
	}
	for i := range 1200 { // a HAMT-sharded directory
		files[fmt.Sprintf("many/f%04d-%s", i, "padding-padding-padding-padding-padding-padding-padding-pad")] = []byte(fmt.Sprint(i))
	}
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := node.NewMemStore()
	root, err := importer.New(st, importer.Options{}).ImportPath(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	hamt := fmt.Sprintf("f0777-%s", "padding-padding-padding-padding-padding-padding-padding-pad")
	for _, req := range []node.Request{
		{Root: root, Path: []string{"a", "b", "big.bin"}, Scope: node.ScopeEntity},
		{Root: root, Path: []string{"a", "b", "big.bin"}, Scope: node.ScopeEntity, Bytes: &node.ByteRange{From: 300000, To: 900000}},
		{Root: root, Path: []string{"a", "b", "big.bin"}, Scope: node.ScopeEntity, Bytes: &node.ByteRange{From: -1000, ToEnd: true}},
		{Root: root, Path: []string{"zeros.bin"}, Scope: node.ScopeEntity},
		{Root: root, Path: []string{"many", hamt}, Scope: node.ScopeEntity},
		{Root: root, Path: []string{"many"}, Scope: node.ScopeEntity},
		{Root: root, Scope: node.ScopeBlock},
		{Root: root, Path: []string{"a"}, Scope: node.ScopeAll},
	} {
		var want, got []string
		if _, err := node.Traverse(ctx, st, req, func(b node.Block) error { want = append(want, b.Cid.String()); return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := node.Walk(ctx, st, req, func(b node.Block) error { got = append(got, b.Cid.String()); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(want) < 2 && req.Scope != node.ScopeBlock || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%v %s %v: walk\n%v\ntraverse\n%v", req.Path, req.Scope, req.Bytes, got, want)
		}
	}
}

func TestCheckDAG(t *testing.T) {
	ctx := context.Background()
	bs, root, _ := site(t)
	n, err := node.CheckDAG(ctx, bs, root, func(p node.Problem) bool { t.Errorf("problem in a whole DAG: %v", p.Err); return true })
	if err != nil || n != bs.Len() {
		t.Fatalf("visited %d of %d blocks: %v", n, bs.Len(), err)
	}
	f, _ := node.Resolve(ctx, bs, root, []string{"media", "video.bin"})
	_ = bs.Delete(ctx, f.Links[0].Cid)
	_ = bs.Put(ctx, f.Links[1].Cid, []byte("not the block"))
	var missing, corrupt int
	if _, err := node.CheckDAG(ctx, bs, root, func(p node.Problem) bool {
		switch {
		case errors.Is(p.Err, node.ErrNotFound):
			missing++
		case errors.Is(p.Err, node.ErrCorrupt):
			corrupt++
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if missing != 1 || corrupt != 1 {
		t.Fatalf("%d missing, %d corrupt; want 1 and 1", missing, corrupt)
	}
	calls := 0
	_, _ = node.CheckDAG(ctx, bs, root, func(node.Problem) bool { calls++; return false })
	if calls != 1 {
		t.Fatalf("walk went on after problem returned false: %d calls", calls)
	}
}
