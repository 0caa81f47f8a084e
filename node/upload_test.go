//go:build !js

package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
)

// carOf writes blocks, in this order, as a CAR naming root.
func carOf(t *testing.T, root cid.Cid, blocks ...node.Block) []byte {
	t.Helper()
	var buf bytes.Buffer
	cw, err := node.NewCARWriter(&buf, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if err := cw.Put(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// ImportDAG takes a DAG sent parents first, in small batches, listing the
// blocks it added; it stops at a block outside the DAG, or one sent twice,
// before storing it, and still lists what it had added.
func TestImportDAG(t *testing.T) {
	ctx := context.Background()
	src, root, _ := site(t)
	var car bytes.Buffer
	if err := node.ExportCAR(ctx, src, root, &car); err != nil {
		t.Fatal(err)
	}
	dst := node.NewMemStore()
	up, err := node.ImportDAG(ctx, dst, root, bytes.NewReader(car.Bytes()), 1)
	if err != nil {
		t.Fatal(err)
	}
	if up.Blocks != src.Len() || len(up.Added) != src.Len() || dst.Len() != src.Len() {
		t.Fatalf("%+v blocks read, store holds %d, want %d", up.Blocks, dst.Len(), src.Len())
	}
	// Again: every block is read, none added.
	if up, err := node.ImportDAG(ctx, dst, root, bytes.NewReader(car.Bytes()), 1); err != nil || len(up.Added) != 0 {
		t.Fatalf("second import: %d added, %v", len(up.Added), err)
	}

	rootData, err := src.Get(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	stray := []byte("no DAG names this block")
	strayCid := node.Sum(node.CodecRaw, stray)
	rootCAR := carOf(t, root, node.Block{Cid: root, Data: rootData})
	rootSection := rootCAR[len(carOf(t, root)):] // CARWriter writes a block once
	for name, car := range map[string][]byte{
		"outside the DAG": carOf(t, root, node.Block{Cid: root, Data: rootData}, node.Block{Cid: strayCid, Data: stray}),
		"sent twice":      append(bytes.Clone(rootCAR), rootSection...),
		"another root":    carOf(t, root, node.Block{Cid: strayCid, Data: stray}),
	} {
		dst := node.NewMemStore()
		up, err := node.ImportDAG(ctx, dst, root, bytes.NewReader(car), 1)
		if !errors.Is(err, node.ErrUnexpectedBlock) {
			t.Fatalf("%s: %v", name, err)
		}
		if has, _ := dst.Has(ctx, strayCid); has {
			t.Fatalf("%s: the stray block was stored", name)
		}
		if len(up.Added) != dst.Len() {
			t.Fatalf("%s: %d added listed, store holds %d", name, len(up.Added), dst.Len())
		}
	}
}

// DiscardBlocks deletes a failed upload's blocks, but those a pin keeps.
func TestDiscardBlocks(t *testing.T) {
	ctx := context.Background()
	st := openPebble(t)
	_, site := siteKey(t)
	kept, keptBlocks, size := importFiles(t, st, map[string]string{"a": "kept"})
	if err := node.PutPin(st, site, node.Pin{Seq: 1, Root: kept, Bytes: size}); err != nil {
		t.Fatal(err)
	}
	other, otherBlocks, _ := importFiles(t, st, map[string]string{"b": "discarded"})
	var cs []cid.Cid
	for _, m := range []map[string]struct{}{keptBlocks, otherBlocks} {
		for k := range m {
			c, err := cid.Cast([]byte(k))
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
	}
	gs, err := node.DiscardBlocks(ctx, st, cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if gs.Deleted != len(otherBlocks) {
		t.Fatalf("deleted %d, want %d", gs.Deleted, len(otherBlocks))
	}
	if has, _ := st.Has(ctx, other); has {
		t.Fatal("the unpinned root was kept")
	}
	for k := range keptBlocks {
		c, _ := cid.Cast([]byte(k))
		if has, _ := st.Has(ctx, c); !has {
			t.Fatalf("pinned block %s deleted", c)
		}
	}
}

// Whatever the CAR, ImportDAG stores only verified blocks of root's DAG
// (root, or linked by a block it stored), and lists each it added.
func FuzzImportDAG(f *testing.F) {
	bs, root, _ := site(f)
	var buf bytes.Buffer
	if err := node.ExportCAR(context.Background(), bs, root, &buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:100])
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		dst := node.NewMemStore()
		up, _ := node.ImportDAG(ctx, dst, root, bytes.NewReader(data), 1)
		if len(up.Added) != dst.Len() {
			t.Fatalf("listed %d added, stored %d", len(up.Added), dst.Len())
		}
		linked := map[string]bool{root.KeyString(): true}
		for c := range dst.AllKeys(ctx) {
			d, _ := dst.Get(ctx, c)
			if err := node.Verify(c, d); err != nil {
				t.Fatalf("stored unverified block: %v", err)
			}
			if nd, err := node.Decode(c, d); err == nil {
				for _, l := range nd.Links {
					linked[l.Cid.KeyString()] = true
				}
			}
		}
		for c := range dst.AllKeys(ctx) {
			if !linked[c.KeyString()] {
				t.Fatalf("stored block %s outside root's DAG", c)
			}
		}
	})
}

// BenchmarkImportDAG compares ImportDAG with ImportCAR (the baseline, no
// DAG bound) on the CAR of a directory of 2,000 small files and a 16 MiB
// file, into a fresh memory store each time.
func BenchmarkImportDAG(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	big := make([]byte, 16<<20)
	_, _ = rand.Read(big)
	if err := os.WriteFile(filepath.Join(dir, "big"), big, 0o644); err != nil {
		b.Fatal(err)
	}
	for i := range 2000 {
		d := filepath.Join(dir, fmt.Sprintf("d%d", i%20))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d.txt", i)), []byte(fmt.Sprintf("file %d", i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	src := node.NewMemStore()
	root, err := importer.New(src, importer.Options{}).ImportPath(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := node.ExportCAR(ctx, src, root, &buf); err != nil {
		b.Fatal(err)
	}
	car := buf.Bytes()
	b.Run("ImportCAR", func(b *testing.B) {
		b.SetBytes(int64(len(car)))
		for b.Loop() {
			if _, err := node.ImportCAR(ctx, node.NewMemStore(), bytes.NewReader(car), 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ImportDAG", func(b *testing.B) {
		b.SetBytes(int64(len(car)))
		for b.Loop() {
			if _, err := node.ImportDAG(ctx, node.NewMemStore(), root, bytes.NewReader(car), 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
