package exchange

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	sink *node.BatchWriter
	seen map[string]struct{}
}

func newStreamGetter(src blockSource, sk *node.BatchWriter) *streamGetter {
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
// the traversal found and, if every block verified but the answer then
// broke the protocol (node.ErrUnexpectedBlock or ErrProtocol), that fault
// as late: the result stands, and the peer is still to blame.
func verifyAnswer(ctx context.Context, src blockSource, req node.Request, sk *node.BatchWriter) (res *node.Result, late, err error) {
	g := newStreamGetter(src, sk)
	res, err = node.Traverse(ctx, g, req, func(b node.Block) error { return sk.Put(ctx, b) })
	if err != nil {
		return nil, nil, err
	}
	b, err := src.nextBlock(ctx)
	switch {
	case err == nil:
		return nil, nil, fmt.Errorf("block %s after the traversal's end: %w", b.Cid, node.ErrUnexpectedBlock)
	case errors.Is(err, io.EOF):
		return res, nil, nil
	case ctx.Err() != nil:
		return nil, nil, ctx.Err()
	case isPeerFault(err):
		return res, err, nil
	}
	// Every block was verified; the peer's late error (a remote error, a
	// closed connection) changes nothing.
	return res, nil, nil
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
