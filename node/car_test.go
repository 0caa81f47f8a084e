//go:build !js

package node_test

import (
	"bytes"
	"context"
	"errors"
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
