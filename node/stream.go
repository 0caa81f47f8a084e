package node

import (
	"context"
	"fmt"

	cid "github.com/ipfs/go-cid"
)

// StreamSource is the client side of a block stream: a Getter for Traverse
// whose blocks come, in order, from an untrusted peer or gateway. Each Get
// takes the next block from the stream and requires it to be exactly the
// block asked for (ErrUnexpectedBlock otherwise); Traverse then checks its
// hash. Blocks already taken are answered from memory, as Traverse asks
// again for repeated blocks without the sender resending them.
type StreamSource struct {
	next func() (Block, error)
	got  map[string][]byte
	// Repeat, if set, answers repeated requests (typically the store the
	// caller puts emitted blocks into), so the source keeps only CIDs in
	// memory instead of every block.
	Repeat Getter
	// Received counts blocks and bytes taken from the stream.
	Blocks, Bytes int
}

// NewStreamSource returns a source reading blocks from next; next returns
// io.EOF (or any error) when the stream ends.
func NewStreamSource(next func() (Block, error)) *StreamSource {
	return &StreamSource{next: next, got: make(map[string][]byte)}
}

// Get implements Getter.
func (s *StreamSource) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	if d, ok := s.got[c.KeyString()]; ok {
		if d == nil && s.Repeat != nil {
			return s.Repeat.Get(ctx, c)
		}
		return d, nil
	}
	b, err := s.next()
	if err != nil {
		return nil, fmt.Errorf("waiting for %s: %w", c, err)
	}
	if !b.Cid.Equals(c) {
		return nil, fmt.Errorf("got %s, want %s: %w", b.Cid, c, ErrUnexpectedBlock)
	}
	if s.Repeat != nil {
		s.got[c.KeyString()] = nil
	} else {
		s.got[c.KeyString()] = b.Data
	}
	s.Blocks++
	s.Bytes += len(b.Data)
	return b.Data, nil
}
