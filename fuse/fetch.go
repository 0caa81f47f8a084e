package fuse

import (
	"context"
	"errors"
	"fmt"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// BlockFetcher fetches one block from the network (seeders, relay peers or
// an origin). It need not verify; FetchingGetter does.
type BlockFetcher interface {
	FetchBlock(ctx context.Context, c cid.Cid) ([]byte, error)
}

// FetchingGetter reads from a local store and, on a miss, fetches the block,
// verifies it against its CID and keeps it in the store.
type FetchingGetter struct {
	Store   node.Blockstore
	Fetcher BlockFetcher
}

// Get implements node.Getter. Errors wrap node.ErrCorrupt for a block that
// fails verification (it is not stored) or the fetcher's error.
func (g *FetchingGetter) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	d, err := g.Store.Get(ctx, c)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, node.ErrNotFound) || g.Fetcher == nil {
		return nil, err
	}
	d, err = g.Fetcher.FetchBlock(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", c, err)
	}
	if err := node.Verify(c, d); err != nil {
		return nil, err
	}
	if err := g.Store.Put(ctx, c, d); err != nil {
		return nil, err
	}
	return d, nil
}
