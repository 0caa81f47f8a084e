package node

import (
	"context"
	"fmt"
	"sync"

	cid "github.com/ipfs/go-cid"
)

// BatchWriter collects blocks on their way into a Blockstore and writes
// them in durable batches (one PutMany per about Limit bytes), so a
// download of many small blocks costs few syncs. Blocks not yet written
// are served from memory, so a traversal can read what it just received.
// Safe for concurrent use; flushes happen in order.
type BatchWriter struct {
	store Blockstore
	limit int
	// SkipStored makes Put check the store first and drop blocks it holds.
	SkipStored bool
	// OnStored, if set, is called after each durable write with the number
	// of blocks and bytes written.
	OnStored func(blocks int, bytes int64)

	mu      sync.Mutex
	pending []Block
	index   map[string][]byte
	size    int
	flushMu sync.Mutex
}

// NewBatchWriter returns a writer into store flushing every limit bytes
// (0 means 4 MiB).
func NewBatchWriter(store Blockstore, limit int) *BatchWriter {
	if limit <= 0 {
		limit = 4 << 20
	}
	return &BatchWriter{store: store, limit: limit, index: make(map[string][]byte)}
}

// Put queues b (once per CID), writing the batch when it is full.
func (w *BatchWriter) Put(ctx context.Context, b Block) error {
	if w.SkipStored {
		has, err := w.store.Has(ctx, b.Cid)
		if err != nil {
			return fmt.Errorf("checking store for %s: %w", b.Cid, err)
		}
		if has {
			return nil
		}
	}
	w.mu.Lock()
	k := b.Cid.KeyString()
	if _, dup := w.index[k]; !dup {
		w.pending = append(w.pending, b)
		w.index[k] = b.Data
		w.size += len(b.Data)
	}
	full := w.size >= w.limit
	w.mu.Unlock()
	if full {
		return w.Flush(ctx)
	}
	return nil
}

// Get reads a block: pending ones from memory, others from the store.
func (w *BatchWriter) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	w.mu.Lock()
	d, ok := w.index[c.KeyString()]
	w.mu.Unlock()
	if ok {
		return d, nil
	}
	return w.store.Get(ctx, c)
}

// Has reports whether c is pending or stored.
func (w *BatchWriter) Has(ctx context.Context, c cid.Cid) (bool, error) {
	w.mu.Lock()
	_, ok := w.index[c.KeyString()]
	w.mu.Unlock()
	if ok {
		return true, nil
	}
	return w.store.Has(ctx, c)
}

// Flush writes the pending blocks durably. They stay readable from memory
// until the write returns, then from the store; after a failed write they
// stay pending, for a later Flush to retry.
func (w *BatchWriter) Flush(ctx context.Context) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	batch, size := w.pending, w.size
	w.pending, w.size = nil, 0
	w.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := w.store.PutMany(ctx, batch)
	w.mu.Lock()
	if err != nil {
		w.pending = append(batch, w.pending...)
		w.size += size
	} else {
		for _, b := range batch {
			delete(w.index, b.Cid.KeyString())
		}
	}
	w.mu.Unlock()
	if err != nil {
		return fmt.Errorf("storing %d blocks: %w", len(batch), err)
	}
	if w.OnStored != nil {
		w.OnStored(len(batch), int64(size))
	}
	return nil
}
