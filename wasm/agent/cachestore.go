//go:build js && wasm

package main

import (
	"context"
	"fmt"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/wasm/internal/agentproto"
	"github.com/hearthcdn/hearth/wasm/internal/jsx"
)

// cacheStore reads the service worker's block cache (Cache Storage, shared
// by the origin's pages and its worker) for tab seeding. Every block is
// verified before it is served: any script of the origin can write there.
type cacheStore struct{ origin string }

var _ node.Getter = (*cacheStore)(nil)

func (s *cacheStore) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	caches := jsx.Global().Get("caches")
	if caches.IsUndefined() {
		return nil, fmt.Errorf("no Cache Storage: %w", node.ErrNotFound)
	}
	resp, err := jsx.Await(ctx, caches.Call("match", agentproto.BlockKey(s.origin, c),
		jsx.Object(map[string]any{"cacheName": agentproto.BlockCacheName})))
	if err != nil {
		return nil, fmt.Errorf("reading cache: %v: %w", err, node.ErrNotFound)
	}
	if resp.IsUndefined() {
		return nil, fmt.Errorf("%s: %w", c, node.ErrNotFound)
	}
	ab, err := jsx.Await(ctx, resp.Call("arrayBuffer"))
	if err != nil {
		return nil, fmt.Errorf("reading cache: %v: %w", err, node.ErrNotFound)
	}
	d, err := jsx.Bytes(ab)
	if err != nil {
		return nil, err
	}
	if err := node.Verify(c, d); err != nil {
		return nil, fmt.Errorf("cached %s: %w", c, err)
	}
	return d, nil
}
