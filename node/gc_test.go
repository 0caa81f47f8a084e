//go:build !js

// The collection tests run on pebble on disk, native only.

package node_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// importFiles imports files (name → content) into st and returns the root
// and the DAG's blocks and size (node.MarkDAG).
func importFiles(t *testing.T, st node.Blockstore, files map[string]string) (cid.Cid, map[string]struct{}, int64) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := importer.New(st, importer.Options{}).ImportPath(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	blocks := make(map[string]struct{})
	size, err := node.MarkDAG(context.Background(), st, root, nil, blocks)
	if err != nil {
		t.Fatal(err)
	}
	return root, blocks, size
}

// bigFile is a file of several chunks, so that a DAG has raw leaves.
func bigFile(tag string) string {
	b := make([]byte, 3*node.ChunkSize+100)
	for i := range b {
		b[i] = byte(i*7) ^ tag[0]
	}
	return string(b)
}

func siteKey(t *testing.T) (ed25519.PrivateKey, node.SiteID) {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k, node.SiteIDOf(k.Public().(ed25519.PublicKey))
}

func openPebble(t *testing.T) *pebblestore.Store {
	t.Helper()
	st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func keys(t *testing.T, st node.Blockstore) map[string]struct{} {
	t.Helper()
	out := make(map[string]struct{})
	for c, err := range st.AllKeys(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		out[c.KeyString()] = struct{}{}
	}
	return out
}

// TestCollectGarbage: in one store, site A's two pins, site B's pin, a
// root pinned by CID and site C's newest record (not pinned) keep their
// blocks; site A's unpinned old root, a managed site's newest record and
// loose blocks are deleted.
func TestCollectGarbage(t *testing.T) {
	ctx := context.Background()
	st := openPebble(t)
	keyA, siteA := siteKey(t)
	keyC, _ := siteKey(t)
	keyM, siteM := siteKey(t)
	_, siteB := siteKey(t)
	log := node.NewRecordLog(st)

	a1, a1Blocks, _ := importFiles(t, st, map[string]string{"index.html": "a1", "big.bin": bigFile("a1")})
	a2, a2Blocks, a2Size := importFiles(t, st, map[string]string{"index.html": "a2", "big.bin": bigFile("a2")})
	a3, a3Blocks, a3Size := importFiles(t, st, map[string]string{"index.html": "a3", "big.bin": bigFile("a2"), "new.txt": "new"})
	b1, b1Blocks, b1Size := importFiles(t, st, map[string]string{"b/index.html": "b1", "big.bin": bigFile("b1")})
	c1, c1Blocks, _ := importFiles(t, st, map[string]string{"c.html": "c1", "big.bin": bigFile("c1")})
	m1, m1Blocks, _ := importFiles(t, st, map[string]string{"m.html": "m1", "big.bin": bigFile("m1")})
	p1, p1Blocks, p1Size := importFiles(t, st, map[string]string{"p.txt": "pinned by CID"})
	_, looseBlocks, _ := importFiles(t, st, map[string]string{"loose.txt": "nobody keeps this", "big.bin": bigFile("zz")})

	for _, root := range []cid.Cid{a1, a2, a3} {
		if _, err := log.SignNext(keyA, root, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// A keeps seq 2 and 3 pinned; seq 1 is unpinned.
	for seq, p := range map[uint64]node.Pin{2: {Root: a2, Bytes: a2Size}, 3: {Root: a3, Bytes: a3Size}} {
		p.Seq = seq
		if err := node.PutPin(st, siteA, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := node.PutPin(st, siteB, node.Pin{Seq: 7, Root: b1, Bytes: b1Size}); err != nil {
		t.Fatal(err)
	}
	if err := node.PinCID(st, p1, p1Size); err != nil {
		t.Fatal(err)
	}
	if _, err := log.SignNext(keyC, c1, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := log.SignNext(keyM, m1, time.Now()); err != nil {
		t.Fatal(err)
	}
	// C's DAG is only partly present: what is there stays.
	var cMissing cid.Cid
	for c, err := range st.AllKeys(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c1Blocks[c.KeyString()]; ok && c.Type() == node.CodecRaw {
			if _, shared := a1Blocks[c.KeyString()]; !shared {
				cMissing = c
				break
			}
		}
	}
	if err := st.Delete(ctx, cMissing); err != nil {
		t.Fatal(err)
	}
	delete(c1Blocks, cMissing.KeyString())

	stats, err := node.CollectGarbage(ctx, st, nil, siteM)
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]struct{})
	for _, set := range []map[string]struct{}{a2Blocks, a3Blocks, b1Blocks, c1Blocks, p1Blocks} {
		for k := range set {
			want[k] = struct{}{}
		}
	}
	got := keys(t, st)
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("kept block %s deleted", cid.MustParse([]byte(k)))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("block %s not collected", cid.MustParse([]byte(k)))
		}
	}
	for _, gone := range []map[string]struct{}{a1Blocks, m1Blocks, looseBlocks} {
		n := 0
		for k := range gone {
			if _, ok := want[k]; !ok {
				n++
			}
		}
		if n == 0 {
			t.Fatal("a DAG meant to be collected shares all its blocks: the test proves nothing")
		}
	}
	if stats.Kept != len(want) || stats.Deleted == 0 {
		t.Errorf("stats %+v, want %d kept", stats, len(want))
	}
	// Every pinned DAG is whole.
	for _, root := range []cid.Cid{a2, a3, b1, p1} {
		if _, err := node.MarkDAG(ctx, st, root, nil, map[string]struct{}{}); err != nil {
			t.Errorf("pinned %s: %v", root, err)
		}
	}
}

// TestCollectDropped: collecting only an unpinned root's DAG deletes its
// own blocks, keeps those a pin shares, and leaves loose blocks to a full
// collection.
func TestCollectDropped(t *testing.T) {
	ctx := context.Background()
	st := openPebble(t)
	_, site := siteKey(t)
	shared := bigFile("shared")
	old, oldBlocks, _ := importFiles(t, st, map[string]string{"index.html": "old", "big.bin": shared, "gone.bin": bigFile("gone")})
	cur, curBlocks, curSize := importFiles(t, st, map[string]string{"index.html": "new", "big.bin": shared})
	_, looseBlocks, _ := importFiles(t, st, map[string]string{"loose.bin": bigFile("loose")})
	if err := node.PutPin(st, site, node.Pin{Seq: 2, Root: cur, Bytes: curSize}); err != nil {
		t.Fatal(err)
	}
	stats, err := node.CollectDropped(ctx, st, []cid.Cid{old}, nil, site)
	if err != nil {
		t.Fatal(err)
	}
	got := keys(t, st)
	deleted := 0
	for k := range oldBlocks {
		_, kept := curBlocks[k]
		_, there := got[k]
		switch {
		case kept && !there:
			t.Errorf("shared block %s deleted", cid.MustParse([]byte(k)))
		case !kept && there:
			t.Errorf("the dropped root's block %s kept", cid.MustParse([]byte(k)))
		case !kept:
			deleted++
		}
	}
	if deleted == 0 || stats.Deleted != deleted {
		t.Fatalf("deleted %d (stats %+v): the test proves nothing", deleted, stats)
	}
	for k := range looseBlocks {
		if _, there := got[k]; !there {
			t.Fatal("a loose block was deleted by a collection of dropped roots")
		}
	}
	if _, err := node.MarkDAG(ctx, st, cur, nil, map[string]struct{}{}); err != nil {
		t.Fatalf("the pinned root: %v", err)
	}
	// A full collection takes the loose blocks.
	if _, err := node.CollectGarbage(ctx, st, nil, site); err != nil {
		t.Fatal(err)
	}
	if n := len(keys(t, st)); n != len(curBlocks) {
		t.Fatalf("%d blocks after a full collection, want the pinned root's %d", n, len(curBlocks))
	}
}

// TestCollectGarbageRefuses: a pin that does not parse, or that names a
// DAG missing an inner node (so what lies under it is unknown), stops
// collection before anything is deleted.
func TestCollectGarbageRefuses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, st *pebblestore.Store, site node.SiteID, root cid.Cid, blocks map[string]struct{})
		want  error
	}{
		{"unreadable pin", func(t *testing.T, st *pebblestore.Store, site node.SiteID, _ cid.Cid, _ map[string]struct{}) {
			if err := st.PutMeta(node.PinKey(site, 9), []byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
		}, node.ErrBadPin},
		{"odd pin key", func(t *testing.T, st *pebblestore.Store, _ node.SiteID, root cid.Cid, _ map[string]struct{}) {
			if err := st.PutMeta("pin/stray", append(make([]byte, 8), root.Bytes()...)); err != nil {
				t.Fatal(err)
			}
		}, node.ErrBadPin},
		{"pinned DAG missing a block", func(t *testing.T, st *pebblestore.Store, site node.SiteID, root cid.Cid, blocks map[string]struct{}) {
			if err := node.PutPin(st, site, node.Pin{Seq: 1, Root: root}); err != nil {
				t.Fatal(err)
			}
			// A missing raw leaf hides nothing; a missing inner node hides
			// what lies under it.
			for k := range blocks {
				if c, _ := cid.Cast([]byte(k)); c.Type() == node.CodecDagPB && !c.Equals(root) {
					if err := st.Delete(ctx, c); err != nil {
						t.Fatal(err)
					}
					return
				}
			}
			t.Fatal("no inner node")
		}, node.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openPebble(t)
			_, site := siteKey(t)
			root, blocks, _ := importFiles(t, st, map[string]string{"big.bin": bigFile("r")})
			importFiles(t, st, map[string]string{"loose.txt": "loose"})
			tc.spoil(t, st, site, root, blocks)
			before := keys(t, st)
			_, err := node.CollectGarbage(ctx, st, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if after := keys(t, st); len(after) != len(before) {
				t.Fatalf("%d of %d blocks left after a refused collection", len(after), len(before))
			}
		})
	}
}
