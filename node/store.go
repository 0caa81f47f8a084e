package node

import (
	"context"
	"iter"

	cid "github.com/ipfs/go-cid"
)

// Block is a CID and the bytes it names.
type Block struct {
	Cid  cid.Cid
	Data []byte
}

// Getter reads blocks. Get returns an error wrapping ErrNotFound when the
// block is absent. The returned slice must not be modified.
type Getter interface {
	Get(ctx context.Context, c cid.Cid) ([]byte, error)
}

// GetterFunc adapts a function to Getter.
type GetterFunc func(ctx context.Context, c cid.Cid) ([]byte, error)

// Get calls f.
func (f GetterFunc) Get(ctx context.Context, c cid.Cid) ([]byte, error) { return f(ctx, c) }

// Blockstore holds blocks keyed by CID.
//
// Durability: a Put or PutMany that returned nil is durable (on disk for
// persistent stores). Stores do not verify; wrap them with NewVerifyingStore
// to check blocks on read.
type Blockstore interface {
	Getter
	// Put stores one block.
	Put(ctx context.Context, c cid.Cid, data []byte) error
	// PutMany stores blocks atomically and durably, in one write.
	PutMany(ctx context.Context, blocks []Block) error
	// Has reports whether the block is held.
	Has(ctx context.Context, c cid.Cid) (bool, error)
	// Delete removes a block; deleting an absent block is not an error.
	Delete(ctx context.Context, c cid.Cid) error
	// GetSize returns the block's length in bytes, or ErrNotFound.
	GetSize(ctx context.Context, c cid.Cid) (int, error)
	// AllKeys yields every CID held, in no particular order. Iteration stops
	// at the first error, which is yielded with cid.Undef.
	AllKeys(ctx context.Context) iter.Seq2[cid.Cid, error]
}
