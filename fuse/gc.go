package fuse

import (
	"context"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// collect deletes the blocks of old that no root in keep references, as
// far as each DAG is present (a mount fetches lazily), and that nothing
// else in the store keeps (node.CollectDropped: every pin of every site,
// every site's newest record; content addressing shares blocks between
// sites).
func collect(ctx context.Context, gs node.GCStore, old cid.Cid, keep []cid.Cid) error {
	live := make(map[string]struct{})
	for _, k := range keep {
		if err := node.MarkPresent(ctx, gs, k, nil, live); err != nil {
			return err
		}
	}
	_, err := node.CollectDropped(ctx, gs, []cid.Cid{old}, live)
	return err
}
