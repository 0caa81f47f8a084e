package node

import (
	"context"
	"fmt"
	"iter"
	"sync"

	cid "github.com/ipfs/go-cid"
)

// MemStore is a Blockstore in memory, safe for concurrent use. It builds for
// js/wasm and is what tests and the browser use.
type MemStore struct {
	mu sync.RWMutex
	m  map[string][]byte
}

var _ Blockstore = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{m: make(map[string][]byte)} }

// Get implements Getter.
func (s *MemStore) Get(_ context.Context, c cid.Cid) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.m[c.KeyString()]
	if !ok {
		return nil, fmt.Errorf("getting %s: %w", c, ErrNotFound)
	}
	return d, nil
}

// Put implements Blockstore. It keeps a copy of data.
func (s *MemStore) Put(_ context.Context, c cid.Cid, data []byte) error {
	cp := append([]byte(nil), data...)
	s.mu.Lock()
	s.m[c.KeyString()] = cp
	s.mu.Unlock()
	return nil
}

// PutMany implements Blockstore.
func (s *MemStore) PutMany(ctx context.Context, blocks []Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range blocks {
		s.m[b.Cid.KeyString()] = append([]byte(nil), b.Data...)
	}
	return nil
}

// Has implements Blockstore.
func (s *MemStore) Has(_ context.Context, c cid.Cid) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.m[c.KeyString()]
	return ok, nil
}

// Delete implements Blockstore.
func (s *MemStore) Delete(_ context.Context, c cid.Cid) error {
	s.mu.Lock()
	delete(s.m, c.KeyString())
	s.mu.Unlock()
	return nil
}

// GetSize implements Blockstore.
func (s *MemStore) GetSize(_ context.Context, c cid.Cid) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.m[c.KeyString()]
	if !ok {
		return 0, fmt.Errorf("sizing %s: %w", c, ErrNotFound)
	}
	return len(d), nil
}

// Len returns the number of blocks held.
func (s *MemStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

// AllKeys implements Blockstore. It iterates over a snapshot of the keys.
func (s *MemStore) AllKeys(ctx context.Context) iter.Seq2[cid.Cid, error] {
	return func(yield func(cid.Cid, error) bool) {
		s.mu.RLock()
		keys := make([]string, 0, len(s.m))
		for k := range s.m {
			keys = append(keys, k)
		}
		s.mu.RUnlock()
		for _, k := range keys {
			if err := ctx.Err(); err != nil {
				yield(cid.Undef, err)
				return
			}
			c, err := cid.Cast([]byte(k))
			if !yield(c, err) || err != nil {
				return
			}
		}
	}
}
