package exchange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// blockSource yields one answer's blocks in the order they arrived; io.EOF
// after the last.
type blockSource interface {
	nextBlock(ctx context.Context) (node.Block, error)
}

// streamGetter is the node.Getter that node.Traverse reads an untrusted
// answer through, on the requesting side. The traversal asks for blocks in
// the order the answering side's identical traversal emitted them, so each
// request for a block not yet seen must be answered by the next block of
// the stream, and that block must be the one asked for (else
// node.ErrUnexpectedBlock); node.Traverse then checks its hash (else
// node.ErrCorrupt). A repeat request for a block already received (the
// traversal re-reads blocks it has emitted) is answered locally, as the
// answering side's traversal did not send it twice.
type streamGetter struct {
	src  blockSource
	sink *sink
	seen map[string]struct{}
}

func newStreamGetter(src blockSource, sk *sink) *streamGetter {
	return &streamGetter{src: src, sink: sk, seen: make(map[string]struct{})}
}

func (g *streamGetter) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	k := c.KeyString()
	if _, ok := g.seen[k]; ok {
		return g.sink.Get(ctx, c)
	}
	b, err := g.src.nextBlock(ctx)
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("answer ended before block %s: %w", c, node.ErrUnexpectedBlock)
	}
	if err != nil {
		return nil, err
	}
	if !b.Cid.Equals(c) {
		return nil, fmt.Errorf("got block %s, traversal expects %s: %w", b.Cid, c, node.ErrUnexpectedBlock)
	}
	g.seen[k] = struct{}{}
	return b.Data, nil
}

// verifyAnswer runs req's traversal over src, storing every verified block
// through sk, and then checks that the answer ends there. It returns what
// the traversal found and the bytes of block data it read.
func verifyAnswer(ctx context.Context, src blockSource, req node.Request, sk *sink) (*node.Result, error) {
	g := newStreamGetter(src, sk)
	res, err := node.Traverse(ctx, g, req, func(b node.Block) error { return sk.put(ctx, b) })
	if err != nil {
		return nil, err
	}
	b, err := src.nextBlock(ctx)
	switch {
	case err == nil:
		return nil, fmt.Errorf("block %s after the traversal's end: %w", b.Cid, node.ErrUnexpectedBlock)
	case errors.Is(err, io.EOF):
		return res, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	// Every block was verified; the peer's late error changes nothing.
	return res, nil
}

// streamSource is a blockSource over a protocol stream. In a DAG answer a
// MISSING notice is a protocol violation; content errors the peer claims
// at END are distrusted (an honest peer's traversal proves them with
// blocks before the requester asks for more) and become ErrRemote.
type streamSource struct {
	s     *stream
	stall time.Duration
}

func (ss *streamSource) nextBlock(ctx context.Context) (node.Block, error) {
	it, err := ss.s.next(ctx, ss.stall)
	if err != nil {
		if isContentErr(err) {
			return node.Block{}, fmt.Errorf("peer claims %v without proof: %w", err, ErrRemote)
		}
		return node.Block{}, err
	}
	if it.missing {
		return node.Block{}, fmt.Errorf("MISSING in a DAG answer: %w", ErrProtocol)
	}
	return it.blk, nil
}

// carSource is a blockSource over a CAR stream (the HTTP fallback).
type carSource struct{ r *node.CARReader }

func (cs carSource) nextBlock(ctx context.Context) (node.Block, error) {
	if err := ctx.Err(); err != nil {
		return node.Block{}, err
	}
	return cs.r.Next()
}

// sink collects verified blocks and writes them to the store in batches.
// Blocks not yet written are served from memory.
type sink struct {
	store node.Blockstore
	limit int

	mu      sync.Mutex
	pending []node.Block
	index   map[string][]byte
	size    int
	flushMu sync.Mutex // orders flushes
}

func newSink(store node.Blockstore, limit int) *sink {
	return &sink{store: store, limit: limit, index: make(map[string][]byte)}
}

func (s *sink) put(ctx context.Context, b node.Block) error {
	s.mu.Lock()
	k := b.Cid.KeyString()
	if _, dup := s.index[k]; !dup {
		s.pending = append(s.pending, b)
		s.index[k] = b.Data
		s.size += len(b.Data)
	}
	full := s.size >= s.limit
	s.mu.Unlock()
	if full {
		return s.flush(ctx)
	}
	return nil
}

// Get reads a block: pending ones from memory, others from the store.
func (s *sink) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	s.mu.Lock()
	d, ok := s.index[c.KeyString()]
	s.mu.Unlock()
	if ok {
		return d, nil
	}
	return s.store.Get(ctx, c)
}

// has reports whether c is pending or stored.
func (s *sink) has(ctx context.Context, c cid.Cid) (bool, error) {
	s.mu.Lock()
	_, ok := s.index[c.KeyString()]
	s.mu.Unlock()
	if ok {
		return true, nil
	}
	return s.store.Has(ctx, c)
}

// flush writes the pending blocks durably. Blocks stay readable from
// memory until the write returns, then from the store.
func (s *sink) flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	s.size = 0
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := s.store.PutMany(ctx, batch)
	s.mu.Lock()
	if err != nil {
		// Keep them pending, for a later flush to retry.
		s.pending = append(batch, s.pending...)
		for _, b := range batch {
			s.size += len(b.Data)
		}
	} else {
		for _, b := range batch {
			delete(s.index, b.Cid.KeyString())
		}
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("storing %d blocks: %w", len(batch), err)
	}
	return nil
}
