//go:build !js

package node_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/internal/dagtest"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// cancelOnDelete cancels a context at its first deletion.
type cancelOnDelete struct {
	*pebblestore.Store
	cancel context.CancelFunc
}

func (c cancelOnDelete) DeleteMany(ctx context.Context, cs []cid.Cid) error {
	c.cancel()
	return c.Store.DeleteMany(ctx, cs)
}

// A collection stops at its context's end between two blocks: cancelled
// while deleting the first batch, it deletes no further batch.
func TestCollectDroppedStopsOnCancel(t *testing.T) {
	ms, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	var links []node.Link
	var blocks []node.Block
	for i := range 3000 {
		b := dagtest.Raw([]byte(fmt.Sprint(i)))
		blocks = append(blocks, b)
		links = append(links, dagtest.Link(fmt.Sprintf("%05d", i), b))
	}
	root := dagtest.Dir(links...)
	dagtest.Put(t, ms, append(blocks, root)...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := node.CollectDropped(ctx, cancelOnDelete{ms, cancel}, []cid.Cid{root.Cid}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v (%+v), want context.Canceled", err, st)
	}
	left := 0
	for _, b := range append(blocks, root) {
		if ok, _ := ms.Has(context.Background(), b.Cid); ok {
			left++
		}
	}
	if left < 3001-1024 {
		t.Fatalf("%d blocks left of 3001: deleting went on after the context ended", left)
	}
}
