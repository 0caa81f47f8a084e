//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"iter"
	"sync"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// hubLimit bounds the bytes the hub holds. Blocks are taken as soon as the
// request that fetched them passes them on, so the bound only matters when
// peers run far ahead of the service worker.
const hubLimit = 96 << 20

// hub is the store the exchange Fetcher fetches into (every block verified
// by the Fetcher) and the requests of the service worker read from, in
// traversal order, waiting for blocks still in flight. It forgets the
// oldest blocks beyond hubLimit. Safe for concurrent use.
type hub struct {
	mu      sync.Mutex
	m       map[string][]byte
	order   []string // insertion order, for forgetting
	size    int64
	arrived chan struct{} // closed and replaced when blocks arrive
}

var _ node.Blockstore = (*hub)(nil)

func newHub() *hub { return &hub{m: make(map[string][]byte), arrived: make(chan struct{})} }

func (h *hub) Get(_ context.Context, c cid.Cid) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d, ok := h.m[c.KeyString()]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("%s: %w", c, node.ErrNotFound)
}

func (h *hub) Put(ctx context.Context, c cid.Cid, data []byte) error {
	return h.PutMany(ctx, []node.Block{{Cid: c, Data: data}})
}

func (h *hub) PutMany(_ context.Context, blocks []node.Block) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range blocks {
		k := b.Cid.KeyString()
		if _, ok := h.m[k]; ok {
			continue
		}
		h.m[k] = b.Data
		h.order = append(h.order, k)
		h.size += int64(len(b.Data))
	}
	for h.size > hubLimit && len(h.order) > 0 {
		k := h.order[0]
		h.order = h.order[1:]
		if d, ok := h.m[k]; ok {
			h.size -= int64(len(d))
			delete(h.m, k)
		}
	}
	close(h.arrived)
	h.arrived = make(chan struct{})
	return nil
}

func (h *hub) Has(_ context.Context, c cid.Cid) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.m[c.KeyString()]
	return ok, nil
}

func (h *hub) Delete(_ context.Context, c cid.Cid) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := c.KeyString()
	if d, ok := h.m[k]; ok {
		h.size -= int64(len(d))
		delete(h.m, k)
	}
	if len(h.order) > 4*len(h.m)+64 { // compact the forgetting order
		keep := h.order[:0]
		for _, o := range h.order {
			if _, ok := h.m[o]; ok {
				keep = append(keep, o)
			}
		}
		h.order = keep
	}
	return nil
}

func (h *hub) GetSize(_ context.Context, c cid.Cid) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d, ok := h.m[c.KeyString()]; ok {
		return len(d), nil
	}
	return 0, fmt.Errorf("%s: %w", c, node.ErrNotFound)
}

func (h *hub) AllKeys(ctx context.Context) iter.Seq2[cid.Cid, error] {
	return func(yield func(cid.Cid, error) bool) {
		h.mu.Lock()
		keys := make([]string, 0, len(h.m))
		for k := range h.m {
			keys = append(keys, k)
		}
		h.mu.Unlock()
		for _, k := range keys {
			c, err := cid.Cast([]byte(k))
			if !yield(c, err) || err != nil {
				return
			}
		}
	}
}

// waiter returns the channel closed at the next arrival.
func (h *hub) waiter() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.arrived
}

// waitingGetter reads blocks from the hub, waiting for those a fetch in
// progress will bring. beforeWait is called before each wait (to flush
// what is ready). When the fetch has ended, a missing block fails with its
// error (or node.ErrNotFound).
type waitingGetter struct {
	h          *hub
	done       <-chan struct{}
	err        func() error
	beforeWait func() error
}

func (g waitingGetter) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	for {
		ch := g.h.waiter()
		if d, err := g.h.Get(ctx, c); err == nil {
			return d, nil
		}
		select {
		case <-g.done:
			if d, err := g.h.Get(ctx, c); err == nil {
				return d, nil
			}
			if err := g.err(); err != nil {
				return nil, fmt.Errorf("fetching %s from peers: %w", c, err)
			}
			return nil, fmt.Errorf("peers did not send %s: %w", c, node.ErrNotFound)
		default:
		}
		if g.beforeWait != nil {
			if err := g.beforeWait(); err != nil {
				return nil, err
			}
		}
		select {
		case <-ch:
		case <-g.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
