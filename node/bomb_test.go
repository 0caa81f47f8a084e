package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	cid "github.com/ipfs/go-cid"
	"github.com/spaolacci/murmur3"

	"github.com/hearthcdn/hearth/internal/dagtest"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
)

// traverseCounting runs Traverse over g with a block budget and returns the
// emitted blocks and the number of Get calls.
func traverseCounting(t testing.TB, g node.Getter, req node.Request, budget int) ([]node.Block, int, error) {
	t.Helper()
	cg := &dagtest.CountingGetter{G: g, Budget: int64(budget)}
	var out []node.Block
	_, err := node.Traverse(context.Background(), cg, req, func(b node.Block) error {
		out = append(out, b)
		return nil
	})
	return out, int(cg.Gets.Load()), err
}

// A traversal emitting each block once walks each distinct node of a file
// bomb a bounded number of times, whatever the range: the nodes wholly in
// the range once, the few holding its ends once per level.
func TestTraverseFileBomb(t *testing.T) {
	d := dagtest.NewBuilder()
	root, distinct := d.FileBomb()
	rn, _, err := node.GetNode(context.Background(), d.Store, root)
	if err != nil {
		t.Fatal(err)
	}
	if rn.FileSize != 16*4*174*174*174*174*174*174*174 {
		t.Fatalf("bomb claims %d bytes", rn.FileSize)
	}
	// Each level holds at most three nodes that are not wholly inside the
	// range (those holding start or end); each distinct node is walked
	// whole once.
	budget := distinct + 3*distinct
	mid := int64(rn.FileSize / 3)
	for _, tc := range []struct {
		name  string
		scope node.Scope
		r     *node.ByteRange
	}{
		{"all", node.ScopeAll, nil},
		{"entity", node.ScopeEntity, nil},
		{"entity-bytes middle", node.ScopeEntity, &node.ByteRange{From: mid, To: mid + 1<<20}},
		{"entity-bytes head", node.ScopeEntity, &node.ByteRange{From: 0, To: 1 << 40}},
		{"entity-bytes tail", node.ScopeEntity, &node.ByteRange{From: -1 << 40, ToEnd: true}},
		{"entity-bytes inner", node.ScopeEntity, &node.ByteRange{From: 7, To: int64(rn.FileSize) - 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := node.Request{Root: root, Scope: tc.scope, Bytes: tc.r}
			blocks, gets, err := traverseCounting(t, d.Store, req, budget)
			if err != nil {
				t.Fatalf("after %d gets: %v", gets, err)
			}
			if len(blocks) != distinct {
				t.Fatalf("emitted %d blocks, want the %d distinct ones", len(blocks), distinct)
			}
			// A client verifying the stream with the same traversal
			// accepts it, at the same bounded cost.
			i := 0
			src := node.NewStreamSource(func() (node.Block, error) {
				if i == len(blocks) {
					return node.Block{}, io.EOF
				}
				i++
				return blocks[i-1], nil
			})
			if _, gets, err := traverseCounting(t, src, req, budget); err != nil || i != len(blocks) {
				t.Fatalf("verifying the stream: %d of %d blocks taken, %d gets: %v", i, len(blocks), gets, err)
			}
		})
	}
}

// A sub-DAG of zero bytes linked many times inside a file costs nothing to
// read, and is walked once by a traversal.
func TestZeroLengthBomb(t *testing.T) {
	d := dagtest.NewBuilder()
	z := d.Raw(nil)
	for range 8 {
		kids := make([]cid.Cid, 174)
		for i := range kids {
			kids[i] = z
		}
		z = d.File(kids, make([]uint64, len(kids)))
	}
	a, b := d.Raw([]byte("a")), d.Raw([]byte("b"))
	kids := []cid.Cid{a}
	sizes := []uint64{1}
	for range 174 {
		kids, sizes = append(kids, z), append(sizes, 0)
	}
	root := d.File(append(kids, b), append(sizes, 1))
	rn, _, err := node.GetNode(context.Background(), d.Store, root)
	if err != nil {
		t.Fatal(err)
	}
	const budget = 64
	cg := &dagtest.CountingGetter{G: d.Store, Budget: int64(budget)}
	var out bytes.Buffer
	if err := node.WriteFile(context.Background(), cg, rn, 0, rn.FileSize, &out); err != nil || out.String() != "ab" {
		t.Fatalf("WriteFile: %q after %d gets: %v", out.String(), cg.Gets.Load(), err)
	}
	cg.Gets.Store(0)
	if segs, err := node.FileSegments(context.Background(), cg, rn, 0, 2); err != nil || len(segs) != 2 {
		t.Fatalf("FileSegments: %d segments after %d gets: %v", len(segs), cg.Gets.Load(), err)
	}
	blocks, gets, err := traverseCounting(t, d.Store, node.Request{Root: root, Scope: node.ScopeEntity}, budget)
	if err != nil || len(blocks) != 1+2+9 {
		t.Fatalf("entity: %d blocks after %d gets: %v", len(blocks), gets, err)
	}
}

// A listing of a HAMT whose shards link one sub-shard at every position is
// refused after reading a bounded number of blocks.
func TestHAMTBomb(t *testing.T) {
	d := dagtest.NewBuilder()
	root := d.HAMTBomb()
	rn, _, err := node.GetNode(context.Background(), d.Store, root)
	if err != nil {
		t.Fatal(err)
	}
	cg := &dagtest.CountingGetter{G: d.Store, Budget: 14}
	n := 0
	for _, err = range node.Entries(context.Background(), cg, rn) {
		if err != nil {
			break
		}
		n++
	}
	if !errors.Is(err, node.ErrBadNode) {
		t.Fatalf("listing after %d entries and %d gets: %v", n, cg.Gets.Load(), err)
	}
	_, gets, err := traverseCounting(t, d.Store, node.Request{Root: root, Scope: node.ScopeEntity}, 14)
	if !errors.Is(err, node.ErrBadNode) {
		t.Fatalf("entity traversal after %d gets: %v", gets, err)
	}
	// Scope all does not read the shards as a directory: each distinct
	// block once.
	blocks, gets, err := traverseCounting(t, d.Store, node.Request{Root: root, Scope: node.ScopeAll}, 15)
	if err != nil || len(blocks) != 15 {
		t.Fatalf("scope all: %d blocks after %d gets: %v", len(blocks), gets, err)
	}
}

// nameAt returns a name whose hash leads to slots path in shards of fanout.
func nameAt(t *testing.T, fanout uint64, path ...int) string {
	t.Helper()
	for i := range 1 << 20 {
		name := fmt.Sprintf("n%d", i)
		if hamtPathOf(name, fanout, len(path)) == fmt.Sprint(path) {
			return name
		}
	}
	t.Fatal("no name found")
	return ""
}

// hamtPathOf returns the first depth slots name hashes to, as text.
func hamtPathOf(name string, fanout uint64, depth int) string {
	m := murmur3.New64()
	m.Write([]byte(name))
	h := m.Sum(nil)
	w := 0
	for f := fanout; f > 1; f >>= 1 {
		w++
	}
	var path []int
	for d := range depth {
		idx := 0
		for i := range w {
			bit := d*w + i
			idx <<= 1
			if h[bit/8]&(0x80>>(bit%8)) != 0 {
				idx |= 1
			}
		}
		path = append(path, idx)
	}
	return fmt.Sprint(path)
}

// Shards are checked against their position: an entry under a slot its
// hash does not lead to, a slot holding two links (the same name in two
// shards) and a shard linked twice are refused; a well-placed HAMT lists.
func TestHAMTPositions(t *testing.T) {
	d := dagtest.NewBuilder()
	leaf := d.Raw([]byte("x"))
	list := func(root cid.Cid) ([]string, error) {
		rn, _, err := node.GetNode(context.Background(), d.Store, root)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for e, err := range node.Entries(context.Background(), d.Store, rn) {
			if err != nil {
				return names, err
			}
			names = append(names, e.Name)
		}
		return names, nil
	}
	a, b := nameAt(t, 4, 0, 1), nameAt(t, 4, 0, 2)
	c := nameAt(t, 4, 3)
	sub := d.Shard(4, []node.Link{{Cid: leaf, Name: "1" + a}, {Cid: leaf, Name: "2" + b}})
	good := d.Shard(4, []node.Link{{Cid: sub, Name: "0"}, {Cid: leaf, Name: "3" + c}})
	if names, err := list(good); err != nil || fmt.Sprint(names) != fmt.Sprint([]string{a, b, c}) {
		t.Fatalf("well-placed HAMT: %v, %v", names, err)
	}
	for _, tc := range []struct {
		name  string
		links []node.Link
	}{
		{"sub-shard at the wrong slot", []node.Link{{Cid: sub, Name: "1"}, {Cid: leaf, Name: "3" + c}}},
		{"entry at the wrong slot", []node.Link{{Cid: sub, Name: "0"}, {Cid: leaf, Name: "2" + c}}},
		{"name in two shards", []node.Link{{Cid: leaf, Name: "0" + a}, {Cid: sub, Name: "0"}}},
		{"shard linked twice", []node.Link{{Cid: sub, Name: "0"}, {Cid: sub, Name: "1"}}},
		{"slot beyond the fanout", []node.Link{{Cid: leaf, Name: "4" + c}}},
		{"slot not hex", []node.Link{{Cid: leaf, Name: "g" + c}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names, err := list(d.Shard(4, tc.links))
			if !errors.Is(err, node.ErrBadNode) {
				t.Fatalf("listed %v: %v", names, err)
			}
			seen := map[string]bool{}
			for _, n := range names {
				if seen[n] {
					t.Fatalf("%q listed twice", n)
				}
				seen[n] = true
			}
		})
	}
	// A shard linked at two slots whose entries fit the first position is
	// refused at the second.
	deep := d.Shard(4, []node.Link{{Cid: leaf, Name: "0" + nameAt(t, 4, 0, 0, 0)}})
	mid := d.Shard(4, []node.Link{{Cid: deep, Name: "0"}, {Cid: deep, Name: "1"}})
	if _, err := list(d.Shard(4, []node.Link{{Cid: mid, Name: "0"}})); !errors.Is(err, node.ErrBadNode) {
		t.Fatalf("shard linked twice: %v", err)
	}
}

// zeroReader reads zeros.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// A legitimate file of repeated chunks is a handful of distinct blocks, and
// a traversal of it reads a handful of blocks.
func TestRepeatedChunksStayCheap(t *testing.T) {
	const size = 128 << 20
	bs := node.NewMemStore()
	root, err := importer.New(bs, importer.Options{}).ImportReader(context.Background(), io.LimitReader(zeroReader{}, size))
	if err != nil {
		t.Fatal(err)
	}
	rn, _, err := node.GetNode(context.Background(), bs, root)
	if err != nil || rn.FileSize != size {
		t.Fatalf("imported %v: %v", rn, err)
	}
	const budget = 40
	for _, req := range []node.Request{
		{Root: root, Scope: node.ScopeAll},
		{Root: root, Scope: node.ScopeEntity},
		{Root: root, Scope: node.ScopeEntity, Bytes: &node.ByteRange{From: 1, To: size - 2}},
	} {
		blocks, gets, err := traverseCounting(t, bs, req, budget)
		if err != nil || len(blocks) != bs.Len() {
			t.Fatalf("%s %v: %d blocks of %d after %d gets: %v", req.Scope, req.Bytes, len(blocks), bs.Len(), gets, err)
		}
	}
	var n countWriter
	if err := node.WriteFile(context.Background(), bs, rn, 0, rn.FileSize, &n); err != nil || n != size {
		t.Fatalf("read %d bytes: %v", n, err)
	}
}

type countWriter int64

func (w *countWriter) Write(p []byte) (int, error) {
	if len(bytes.Trim(p, "\x00")) != 0 {
		return 0, errors.New("not zeros")
	}
	*w += countWriter(len(p))
	return len(p), nil
}

// BenchmarkTraverseBomb compares a traversal of the file bomb (ten distinct
// blocks claiming 7.7e16·4 bytes) with one of a plain file of ten distinct
// blocks: the costs are of the same order.
func BenchmarkTraverseBomb(b *testing.B) {
	d := dagtest.NewBuilder()
	bomb, _ := d.FileBomb()
	var kids []cid.Cid
	var sizes []uint64
	for i := range 9 {
		kids = append(kids, d.Raw(bytes.Repeat([]byte{byte(i)}, 16)))
		sizes = append(sizes, 16)
	}
	plain := d.File(kids, sizes)
	hb := d.HAMTBomb()
	for _, bc := range []struct {
		name string
		req  node.Request
	}{
		{"plain/entity", node.Request{Root: plain, Scope: node.ScopeEntity}},
		{"bomb/entity", node.Request{Root: bomb, Scope: node.ScopeEntity}},
		{"bomb/all", node.Request{Root: bomb, Scope: node.ScopeAll}},
		{"bomb/entity-bytes", node.Request{Root: bomb, Scope: node.ScopeEntity, Bytes: &node.ByteRange{From: 1 << 40, To: 1 << 50}}},
		{"hamt-bomb/entity", node.Request{Root: hb, Scope: node.ScopeEntity}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				_, _ = node.Traverse(context.Background(), d.Store, bc.req, func(node.Block) error { return nil })
			}
		})
	}
}
