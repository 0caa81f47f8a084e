//go:build !js

package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

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
	roots, n, err := node.ImportCAR(ctx, dst, bytes.NewReader(car), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || !roots[0].Equals(root) || n != bs.Len() || dst.Len() != bs.Len() {
		t.Fatalf("roots %v, %d blocks, want %d", roots, n, bs.Len())
	}
	// Truncated: the blocks before the cut are kept, the error is clear.
	dst = node.NewMemStore()
	_, n, err = node.ImportCAR(ctx, dst, bytes.NewReader(car[:len(car)-50]), 0)
	if err == nil || n == 0 || dst.Len() != n {
		t.Fatalf("truncated CAR: err %v, %d stored, store holds %d", err, n, dst.Len())
	}
	// A flipped byte in the last block's data is refused before storing.
	bad := bytes.Clone(car)
	bad[len(bad)-1] ^= 0xff
	dst = node.NewMemStore()
	if _, _, err := node.ImportCAR(ctx, dst, bytes.NewReader(bad), 0); !errors.Is(err, node.ErrCorrupt) {
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
