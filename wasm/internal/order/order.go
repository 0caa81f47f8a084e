// Package order walks the blocks that answer a Trustless Gateway request in
// node.Traverse's order without hashing them again, for the page agent,
// which passes blocks already verified on to the service worker, which
// verifies them again.
package order

import (
	"context"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// Walk emits the blocks that answer req, each once, in node.Traverse's
// order (the Trustless Gateway's), reading them through g.
//
// The blocks in the hub were verified by the exchange Fetcher already, and
// the worker verifies them again with node.Traverse; hashing them a third
// time here would cost the page's thread about a second per 64 MiB. So for
// dag-scope=entity, what the worker asks, the walk records the blocks that
// node's own path and file walkers read (node.Resolve, node.FileSegments,
// node.ListDir: the functions node.Traverse is made of, so the order is
// the same) instead of verifying them. Other scopes go through
// node.Traverse.
func Walk(ctx context.Context, g node.Getter, req node.Request, emit func(node.Block) error) error {
	if req.Scope != node.ScopeEntity {
		_, err := node.Traverse(ctx, g, req, emit)
		return err
	}
	rec := &recorder{g: g, emit: emit, seen: make(map[string]struct{})}
	n, err := node.Resolve(ctx, rec, req.Root, req.Path)
	if err != nil {
		return err
	}
	switch {
	case n.IsFile():
		start, end := uint64(0), n.FileSize
		if req.Bytes != nil {
			start, end = req.Bytes.Bounds(n.FileSize)
		}
		_, err = node.FileSegments(ctx, rec, n, start, end)
	case n.Kind == node.KindHAMTShard:
		_, err = node.ListDir(ctx, rec, n)
	}
	return err
}

// recorder is a Getter that emits each block the first time it is read.
// It answers repeated reads of recent blocks itself (a file of identical
// chunks reads one leaf many times; the source may have dropped it).
type recorder struct {
	g      node.Getter
	emit   func(node.Block) error
	seen   map[string]struct{}
	recent [4]node.Block
	next   int
}

func (r *recorder) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	for _, b := range r.recent {
		if b.Data != nil && b.Cid.Equals(c) {
			return b.Data, nil
		}
	}
	d, err := r.g.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	r.recent[r.next] = node.Block{Cid: c, Data: d}
	r.next = (r.next + 1) % len(r.recent)
	k := c.KeyString()
	if _, ok := r.seen[k]; !ok {
		r.seen[k] = struct{}{}
		if err := r.emit(node.Block{Cid: c, Data: d}); err != nil {
			return nil, err
		}
	}
	return d, nil
}
