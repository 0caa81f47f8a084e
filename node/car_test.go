//go:build !js

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

	"github.com/hearthcdn/hearth/internal/dagtest"
	"github.com/hearthcdn/hearth/node"
)

func TestCARRoundTrip(t *testing.T) {
	ctx := context.Background()
	bs, root, _ := site(t)
	var buf bytes.Buffer
	if err := node.ExportCAR(ctx, bs, root, &buf); err != nil {
		t.Fatal(err)
	}
	car := buf.Bytes()
	dst := node.NewMemStore()
	imp, err := node.ImportCAR(ctx, dst, bytes.NewReader(car), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Roots) != 1 || !imp.Roots[0].Equals(root) || len(imp.Added) != bs.Len() || dst.Len() != bs.Len() {
		t.Fatalf("roots %v, %d blocks, want %d", imp.Roots, len(imp.Added), bs.Len())
	}
	// Again: nothing is added.
	if imp, err := node.ImportCAR(ctx, dst, bytes.NewReader(car), 0); err != nil || len(imp.Added) != 0 || imp.Blocks != bs.Len() {
		t.Fatalf("second import: %+v %v", imp, err)
	}
	// Truncated, in batches of one block: the blocks before the cut are
	// stored and listed as added, the error is clear.
	dst = node.NewMemStore()
	imp, err = node.ImportCAR(ctx, dst, bytes.NewReader(car[:len(car)-50]), 1)
	if err == nil || len(imp.Added) == 0 || dst.Len() != len(imp.Added) {
		t.Fatalf("truncated CAR: err %v, %d added, store holds %d", err, len(imp.Added), dst.Len())
	}
	// A flipped byte in the last block's data is refused before storing.
	bad := bytes.Clone(car)
	bad[len(bad)-1] ^= 0xff
	dst = node.NewMemStore()
	if _, err := node.ImportCAR(ctx, dst, bytes.NewReader(bad), 0); !errors.Is(err, node.ErrCorrupt) {
		t.Fatalf("corrupt CAR: %v", err)
	}
	for c, err := range dst.AllKeys(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		d, _ := dst.Get(ctx, c)
		if err := node.Verify(c, d); err != nil {
			t.Fatalf("stored a bad block: %v", err)
		}
	}
	if _, err := node.NewCARReader(bytes.NewReader([]byte("garbage"))); err == nil {
		t.Fatal("garbage header accepted")
	}
}

// A CARWriter keeps nothing per block written (no index of the CAR), so a
// CAR of a million blocks is served in the memory of one: writing a block
// allocates nothing, and the CAR reads back block for block.
func TestCARWriterKeepsNoIndex(t *testing.T) {
	ctx := context.Background()
	blocks := make([]node.Block, 64)
	for i := range blocks {
		d := []byte(fmt.Sprintf("block %d", i))
		blocks[i] = node.Block{Cid: node.Sum(node.CodecRaw, d), Data: d}
	}
	cw, err := node.NewCARWriter(io.Discard, blocks[0].Cid)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		if err := cw.Put(ctx, blocks[i%len(blocks)]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs > 0 {
		t.Fatalf("Put allocates %.1f times a block; want 0", allocs)
	}

	var buf bytes.Buffer
	if cw, err = node.NewCARWriter(&buf, blocks[0].Cid); err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if err := cw.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	cr, err := node.NewCARReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r := cr.Roots(); len(r) != 1 || !r[0].Equals(blocks[0].Cid) {
		t.Fatalf("roots %v", r)
	}
	for _, want := range blocks {
		got, err := cr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !got.Cid.Equals(want.Cid) || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("read %s, want %s", got.Cid, want.Cid)
		}
	}
	if _, err := cr.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last block: %v", err)
	}
}

// A CAR written to a file (an io.WriterAt) carries its header from the
// start, and reads back.
func TestCARWriterToFile(t *testing.T) {
	ctx := context.Background()
	d := []byte("one block")
	b := node.Block{Cid: node.Sum(node.CodecRaw, d), Data: d}
	f, err := os.Create(filepath.Join(t.TempDir(), "x.car"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cw, err := node.NewCARWriter(f, b.Cid)
	if err != nil {
		t.Fatal(err)
	}
	if err := cw.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	dst := node.NewMemStore()
	imp, err := node.ImportCAR(ctx, dst, f, 0)
	if err != nil || len(imp.Roots) != 1 || !imp.Roots[0].Equals(b.Cid) || dst.Len() != 1 {
		t.Fatalf("reading the CAR back: %v, %+v", err, imp)
	}
}

// A CAR written children first whose last block is a directory listing "a",
// "b", then "a" again: ImportCAR refuses it (ErrLinkOrder) and never
// stores it; the blocks it stored before are listed as added, and
// DiscardBlocks takes them back, leaving the store as it was.
func TestImportCARHostile(t *testing.T) {
	ctx := context.Background()
	f := dagtest.Raw([]byte("payload"))
	sub := dagtest.Dir(dagtest.Link("f", f))
	link := dagtest.Symlink("/tmp")
	b := dagtest.Raw([]byte("b"))
	hostile := dagtest.Dir(dagtest.Link("a", link), dagtest.Link("b", b), dagtest.Link("a", sub))
	var buf bytes.Buffer
	cw, err := node.NewCARWriter(&buf, hostile.Cid)
	if err != nil {
		t.Fatal(err)
	}
	for _, blk := range []node.Block{f, sub, link, b, hostile} {
		if err := cw.Put(ctx, blk); err != nil {
			t.Fatal(err)
		}
	}
	dst := openPebble(t)
	kept := dagtest.Raw([]byte("kept"))
	dagtest.Put(t, dst, kept, f)
	imp, err := node.ImportCAR(ctx, dst, bytes.NewReader(buf.Bytes()), 1)
	if !errors.Is(err, node.ErrLinkOrder) {
		t.Fatalf("hostile CAR: %v, want ErrLinkOrder", err)
	}
	if has, _ := dst.Has(ctx, hostile.Cid); has {
		t.Fatal("the hostile directory was stored")
	}
	if len(imp.Added) != 3 { // sub, link, b; f was there before
		t.Fatalf("added %v, want the 3 blocks new before the hostile one", imp.Added)
	}
	if _, err := node.DiscardBlocks(ctx, dst, imp.Added, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(keys(t, dst)); n != 2 {
		t.Fatalf("store holds %d blocks after the discard, want the 2 it held", n)
	}
}
