//go:build !js

package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/internal/dagtest"
	"github.com/hearthcdn/hearth/node"
)

// Decoders must never panic and must either fail or return a node that
// re-checks cleanly.
func FuzzDecode(f *testing.F) {
	bs, root, _ := site(f)
	for c, err := range bs.AllKeys(context.Background()) {
		if err != nil {
			f.Fatal(err)
		}
		if c.Type() == node.CodecDagPB {
			d, _ := bs.Get(context.Background(), c)
			f.Add(d)
		}
	}
	f.Add([]byte{0x0a, 0x02, 0x08, 0x01})
	_ = root
	f.Fuzz(func(t *testing.T, data []byte) {
		c := node.Sum(node.CodecDagPB, data)
		n, err := node.Decode(c, data)
		if err != nil {
			if !errors.Is(err, node.ErrBadNode) {
				t.Fatalf("error not wrapping ErrBadNode: %v", err)
			}
			return
		}
		if n.Kind == node.KindFile && len(n.BlockSizes) != len(n.Links) {
			t.Fatal("file node with mismatched blocksizes accepted")
		}
		// Reading through a decoded node never panics either.
		g := node.GetterFunc(func(ctx context.Context, c cid.Cid) ([]byte, error) { return data, nil })
		if n.IsDir() {
			for _, err := range node.Entries(context.Background(), g, n) {
				if err != nil {
					break
				}
			}
		}
		if n.IsFile() {
			_ = node.WriteFile(context.Background(), g, n, 0, n.FileSize, io.Discard)
		}
	})
}

func FuzzCARReader(f *testing.F) {
	bs, root, _ := site(f)
	var buf bytes.Buffer
	if err := node.ExportCAR(context.Background(), bs, root, &buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:100])
	f.Fuzz(func(t *testing.T, data []byte) {
		dst := node.NewMemStore()
		imp, _ := node.ImportCAR(context.Background(), dst, bytes.NewReader(data), 0)
		if len(imp.Added) != dst.Len() {
			t.Fatalf("reported %d blocks added, stored %d", len(imp.Added), dst.Len())
		}
		for c := range dst.AllKeys(context.Background()) {
			d, _ := dst.Get(context.Background(), c)
			if err := node.Verify(c, d); err != nil {
				t.Fatalf("stored unverified block: %v", err)
			}
		}
	})
}

func FuzzRootRecord(f *testing.F) {
	key := newKey(f)
	r, _ := node.NewRootRecord(key, 1, node.Sum(node.CodecDagPB, []byte("x")), time.Unix(1700000000, 0))
	f.Add(r.Bytes())
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := node.ParseRootRecord(data)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to exactly the same bytes.
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatal("non-canonical record accepted")
		}
		if got.Site == site && !bytes.Equal(data, r.Bytes()) && got.Seq == 1 && got.Root.Equals(r.Root) && got.Published.Equal(r.Published) {
			t.Fatal("forged record accepted")
		}
	})
}

func FuzzParseCID(f *testing.F) {
	f.Add(node.Sum(node.CodecRaw, []byte("x")).String())
	f.Add("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG")
	f.Add("bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := node.ParseCID(s)
		if err != nil {
			return
		}
		if c.Type() != node.CodecRaw && c.Type() != node.CodecDagPB {
			t.Fatalf("accepted codec 0x%x", c.Type())
		}
	})
}

// fuzzDAG builds a DAG from data, a small set of blocks described bottom-up:
// each block is a kind byte, then for a leaf a length and its bytes, else a
// link count and per link a target (an earlier block, by index) and a
// selector (a size, a name, a HAMT slot). Blocks are real dag-pb/UnixFS
// (that Decode may still refuse), with real CIDs. It returns the store, the
// last block (the root) and the number of blocks.
func fuzzDAG(data []byte) (*node.MemStore, cid.Cid, int) {
	d := dagtest.NewBuilder()
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	var cids []cid.Cid
	var sizes []uint64
	for len(cids) < 8 && len(data) > 0 {
		kind := next() % 4
		if len(cids) == 0 || kind == 0 {
			n := min(int(next()), len(data))
			cids, sizes = append(cids, d.Raw(append([]byte{}, data[:n]...))), append(sizes, uint64(n))
			data = data[n:]
			continue
		}
		nl := int(next() % 32)
		fanout := uint64(4)
		if kind == 3 {
			fanout = []uint64{2, 4, 16, 256}[next()%4]
		}
		var links []node.Link
		var bsz []uint64
		var total uint64
		for i := range nl {
			t, sel := int(next())%len(cids), next()
			l := node.Link{Cid: cids[t]}
			switch kind {
			case 1:
				s := sizes[t]
				if sel&1 == 0 {
					s = uint64(sel >> 1)
				}
				bsz = append(bsz, s)
				total += s
			case 2:
				l.Name = fmt.Sprintf("%c%d", 'a'+i, sel%4)
			case 3:
				l.Name = dagtest.SlotName(fanout, int(uint64(sel&0x7f)%fanout))
				if sel&0x80 == 0 {
					l.Name += fmt.Sprintf("e%d", sel%16)
				}
			}
			links = append(links, l)
		}
		var c cid.Cid
		switch kind {
		case 1:
			u := dagtest.UnixFS{Type: node.KindFile, FileSize: total, BlockSizes: bsz}
			c = d.Put(node.CodecDagPB, dagtest.EncodePB(links, u.Encode()))
		case 2:
			c = d.Dir(links)
		case 3:
			c = d.Shard(fanout, links)
		}
		cids, sizes = append(cids, c), append(sizes, total)
	}
	if len(cids) == 0 {
		return d.Store, cid.Undef, 0
	}
	return d.Store, cids[len(cids)-1], len(cids)
}

// Traversals and listings of any small DAG cost what its distinct blocks
// do, whatever it claims: a bounded number of block reads, each block
// emitted once, and a client verifying the stream accepts it.
func FuzzDAG(f *testing.F) {
	// A file bomb: a leaf, then levels linking eight times to the level below.
	bomb := []byte{0, 4, 'a', 'b', 'c', 'd'}
	for lvl := range 7 {
		bomb = append(bomb, 1, 8)
		for range 8 {
			bomb = append(bomb, byte(lvl), 1)
		}
	}
	f.Add(bomb, uint16(3), uint16(1000))
	// A HAMT bomb: shards linking the one below at every slot.
	hb := []byte{0, 1, 'x', 3, 2, 1, 0, 0x01, 0, 0x02}
	for lvl := range 6 {
		hb = append(hb, 3, 4, 1)
		for s := range 4 {
			hb = append(hb, byte(lvl+1), 0x80|byte(s))
		}
	}
	f.Add(hb, uint16(0), uint16(0))
	f.Add([]byte{0, 3, 'a', 'b', 'c', 2, 2, 0, 0, 0, 1}, uint16(0), uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, from, to uint16) {
		bs, root, nblocks := fuzzDAG(data)
		if nblocks == 0 {
			return
		}
		// Reads: each distinct block once, plus at most three nodes per
		// level holding a range's ends, plus the root again.
		budget := 4*nblocks + 3*66 + 8
		for _, req := range []node.Request{
			{Root: root, Scope: node.ScopeAll},
			{Root: root, Scope: node.ScopeEntity},
			{Root: root, Scope: node.ScopeEntity, Bytes: &node.ByteRange{From: int64(from), To: int64(from) + int64(to)}},
		} {
			blocks, gets, err := traverseCounting(t, bs, req, budget)
			if errors.Is(err, dagtest.ErrBudget) {
				t.Fatalf("%s %v: more than %d reads for %d blocks", req.Scope, req.Bytes, budget, nblocks)
			}
			seen := map[string]bool{}
			for _, b := range blocks {
				if seen[b.Cid.KeyString()] {
					t.Fatalf("%s: %s emitted twice", req.Scope, b.Cid)
				}
				seen[b.Cid.KeyString()] = true
			}
			if err != nil {
				continue
			}
			i := 0
			src := node.NewStreamSource(func() (node.Block, error) {
				if i == len(blocks) {
					return node.Block{}, io.EOF
				}
				i++
				return blocks[i-1], nil
			})
			if _, _, err := traverseCounting(t, src, req, budget); err != nil || i != len(blocks) {
				t.Fatalf("%s %v: verifying %d blocks (%d gets to serve): %v", req.Scope, req.Bytes, len(blocks), gets, err)
			}
		}
		rn, _, err := node.GetNode(context.Background(), bs, root)
		if err != nil {
			return
		}
		if rn.IsDir() {
			cg := &dagtest.CountingGetter{G: bs, Budget: int64(nblocks)}
			names := map[string]bool{}
			for e, err := range node.Entries(context.Background(), cg, rn) {
				if err != nil {
					if errors.Is(err, dagtest.ErrBudget) {
						t.Fatal("listing read a block twice")
					}
					break
				}
				if names[e.Name] {
					t.Fatalf("%q listed twice", e.Name)
				}
				names[e.Name] = true
			}
		}
		if rn.IsFile() {
			// Reading bytes costs what the bytes do: 64 bytes, each
			// under at most 65 levels, plus the range's ends.
			s := min(uint64(from), rn.FileSize)
			e := min(s+64, rn.FileSize)
			cg := &dagtest.CountingGetter{G: bs, Budget: (64 + 3) * 66}
			if err := node.WriteFile(context.Background(), cg, rn, s, e, io.Discard); errors.Is(err, dagtest.ErrBudget) {
				t.Fatalf("reading [%d, %d) took more than %d reads", s, e, cg.Budget)
			}
		}
	})
}
