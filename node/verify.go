package node

import (
	"context"
	"fmt"

	cid "github.com/ipfs/go-cid"
)

// VerifyingStore wraps a Blockstore and checks every block against its CID
// on Get and on Put. A corrupt block read from disk yields an error wrapping
// ErrCorrupt; it is never returned to the caller.
type VerifyingStore struct {
	Blockstore
}

// NewVerifyingStore wraps bs.
func NewVerifyingStore(bs Blockstore) *VerifyingStore { return &VerifyingStore{Blockstore: bs} }

// Get returns the block after checking its hash.
func (v *VerifyingStore) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	d, err := v.Blockstore.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := Verify(c, d); err != nil {
		return nil, fmt.Errorf("reading from store: %w", err)
	}
	return d, nil
}

// Put checks the block, then stores it.
func (v *VerifyingStore) Put(ctx context.Context, c cid.Cid, data []byte) error {
	if err := Verify(c, data); err != nil {
		return err
	}
	return v.Blockstore.Put(ctx, c, data)
}

// PutMany checks every block, then stores them all.
func (v *VerifyingStore) PutMany(ctx context.Context, blocks []Block) error {
	for _, b := range blocks {
		if err := Verify(b.Cid, b.Data); err != nil {
			return err
		}
	}
	return v.Blockstore.PutMany(ctx, blocks)
}
