package node_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hearthcdn/hearth/node"
)

// failingStore fails PutMany while fail is set.
type failingStore struct {
	*node.MemStore
	fail bool
}

func (f *failingStore) PutMany(ctx context.Context, bs []node.Block) error {
	if f.fail {
		return errors.New("disk full")
	}
	return f.MemStore.PutMany(ctx, bs)
}

func TestBatchWriter(t *testing.T) {
	ctx := context.Background()
	st := &failingStore{MemStore: node.NewMemStore()}
	w := node.NewBatchWriter(st, 3000)
	var stored int
	w.OnStored = func(n int, _ int64) { stored += n }
	blk := func(i int) node.Block {
		d := []byte(fmt.Sprintf("%01000d", i))
		return node.Block{Cid: node.Sum(node.CodecRaw, d), Data: d}
	}
	for i := 0; i < 2; i++ {
		if err := w.Put(ctx, blk(i)); err != nil {
			t.Fatal(err)
		}
	}
	if st.Len() != 0 {
		t.Fatal("written before the batch was full")
	}
	if d, err := w.Get(ctx, blk(1).Cid); err != nil || string(d) != string(blk(1).Data) {
		t.Fatalf("pending block unreadable: %v", err)
	}
	// A failed write keeps the blocks pending and readable.
	st.fail = true
	if err := w.Put(ctx, blk(2)); err == nil {
		t.Fatal("failed write not reported")
	}
	if ok, _ := w.Has(ctx, blk(2).Cid); !ok {
		t.Fatal("block lost by a failed write")
	}
	st.fail = false
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Len() != 3 || stored != 3 {
		t.Fatalf("store holds %d, OnStored counted %d, want 3", st.Len(), stored)
	}
	// SkipStored drops blocks the store holds; duplicates are queued once.
	w.SkipStored = true
	_ = w.Put(ctx, blk(0))
	_ = w.Put(ctx, blk(5))
	_ = w.Put(ctx, blk(5))
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if stored != 4 {
		t.Fatalf("OnStored counted %d, want 4", stored)
	}
}
