package fuse

import (
	"context"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// collect deletes the blocks of old that no root in keep references, as
// far as each DAG is present (a mount fetches lazily). In a store with
// metadata (pebblestore), what node.CollectDropped keeps is kept too:
// every pin of every site and every site's newest record, since content
// addressing shares blocks between sites.
func collect(ctx context.Context, bs node.Blockstore, old cid.Cid, keep []cid.Cid) error {
	live := make(map[string]struct{})
	for _, k := range keep {
		if _, err := node.MarkPresent(ctx, bs, k, nil, live); err != nil {
			return err
		}
	}
	if gs, ok := bs.(node.GCStore); ok {
		_, err := node.CollectDropped(ctx, gs, []cid.Cid{old}, live)
		return err
	}
	dead := make(map[string]struct{})
	if _, err := node.MarkPresent(ctx, bs, old, live, dead); err != nil {
		return err
	}
	for k := range dead {
		c, err := cid.Cast([]byte(k))
		if err != nil {
			return err
		}
		if err := bs.Delete(ctx, c); err != nil {
			return err
		}
	}
	return nil
}
