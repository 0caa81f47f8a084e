package node_test

import (
	"context"
	"fmt"

	"github.com/hearthcdn/hearth/node"
)

func ExampleCollectGarbage() {
	ctx := context.Background()
	st := struct {
		*node.MemStore
		*node.MemMeta
	}{node.NewMemStore(), node.NewMemMeta()}
	kept := node.Sum(node.CodecRaw, []byte("pinned"))
	_ = st.Put(ctx, kept, []byte("pinned"))
	loose := node.Sum(node.CodecRaw, []byte("loose"))
	_ = st.Put(ctx, loose, []byte("loose"))
	_ = node.PinCID(st, kept, 6)
	stats, err := node.CollectGarbage(ctx, st, nil)
	fmt.Println(stats.Kept, stats.Deleted, err)
	// Output: 1 1 <nil>
}
