//go:build !js

package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	ft "github.com/ipfs/boxo/ipld/unixfs"
	cid "github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

func sameBlocks(t *testing.T, want map[string]node.Block, got *node.MemStore) {
	t.Helper()
	if got.Len() != len(want) {
		t.Fatalf("store holds %d blocks, want %d", got.Len(), len(want))
	}
	for _, b := range want {
		d, err := got.Get(context.Background(), b.Cid)
		if err != nil || !bytes.Equal(d, b.Data) {
			t.Fatalf("block %s: %v", b.Cid, err)
		}
	}
}

func TestReplicateOnlyMissingBlocks(t *testing.T) {
	f := newFixture(t)
	srv, reqs := serveStore(t, f.store)
	all := harness.DAGBlocks(t, f.store, f.root)
	var stored atomic.Int64
	fe, _ := gateway.NewFetcher([]string{srv.URL}, gateway.FetcherOptions{OnStored: func(n int, _ int64) { stored.Add(int64(n)) }})
	dst := node.NewMemStore()
	r := gateway.NewReplicator(fe, dst, gateway.ReplicatorOptions{Concurrency: 4})
	ctx := context.Background()

	term, st, err := r.Replicate(ctx, f.root, nil)
	if err != nil || !term.Equals(f.root) {
		t.Fatalf("Replicate: %v", err)
	}
	sameBlocks(t, all, dst)
	var total int64
	for _, b := range all {
		total += int64(len(b.Data))
	}
	if st.Blocks != int64(len(all)) || st.Fetched != int64(len(all)) || st.Bytes != total || st.FetchedBytes != total {
		t.Fatalf("stats %+v, want %d blocks, %d bytes", st, len(all), total)
	}
	// The root alone, then the DAG under it in one stream.
	if reqs.n.Load() != 2 || stored.Load() != int64(len(all)) {
		t.Fatalf("%d requests, %d reported stored, for %d blocks", reqs.n.Load(), stored.Load(), len(all))
	}

	// Lose a leaf, a file node and a directory: exactly those are fetched again.
	big, _ := node.Resolve(ctx, f.store, f.root, []string{"big.bin"})
	lost := []string{"a/c", "big.bin"}
	for _, p := range lost {
		if err := dst.Delete(ctx, f.resolve(t, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.Delete(ctx, big.Links[2].Cid); err != nil {
		t.Fatal(err)
	}
	reqs.n.Store(0)
	_, st, err = r.Replicate(ctx, f.root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if reqs.n.Load() != 3 || st.Fetched != 3 || st.Blocks != int64(len(all)) {
		t.Fatalf("after losing 3 blocks: %d requests, stats %+v", reqs.n.Load(), st)
	}
	sameBlocks(t, all, dst)

	// A corrupt copy of a directory node is detected and fetched again.
	if err := dst.Put(ctx, f.resolve(t, "a"), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	reqs.n.Store(0)
	if _, _, err := r.Replicate(ctx, f.root, nil); err != nil {
		t.Fatal(err)
	}
	if reqs.n.Load() != 1 {
		t.Fatalf("corrupt node: %d requests", reqs.n.Load())
	}
	sameBlocks(t, all, dst)
}

// A path replicates the blocks proving it and the DAG at its end, nothing else.
func TestReplicatePath(t *testing.T) {
	f := newFixture(t)
	srv, _ := serveStore(t, f.store)
	fe, _ := gateway.NewFetcher([]string{srv.URL}, gateway.FetcherOptions{})
	dst := node.NewMemStore()
	term, _, err := gateway.NewReplicator(fe, dst, gateway.ReplicatorOptions{}).Replicate(context.Background(), f.root, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if !term.Equals(f.resolve(t, "a")) {
		t.Fatalf("term %s", term)
	}
	want := harness.DAGBlocks(t, f.store, term)
	rootData, _ := f.store.Get(context.Background(), f.root)
	want[f.root.KeyString()] = node.Block{Cid: f.root, Data: rootData}
	sameBlocks(t, want, dst)

	_, _, err = gateway.NewReplicator(fe, node.NewMemStore(), gateway.ReplicatorOptions{}).Replicate(context.Background(), f.root, []string{"nope"})
	if !errors.Is(err, node.ErrNoSuchPath) && !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("missing path: %v", err)
	}
}

// A DAG over the limit stops early, having downloaded about the limit.
func TestReplicateMaxBytes(t *testing.T) {
	f := newFixture(t)
	srv, _ := serveStore(t, f.store)
	fe, _ := gateway.NewFetcher([]string{srv.URL}, gateway.FetcherOptions{})
	dst := node.NewMemStore()
	const limit = 300 << 10
	_, st, err := gateway.NewReplicator(fe, dst, gateway.ReplicatorOptions{Concurrency: 2, MaxBytes: limit}).Replicate(context.Background(), f.root, nil)
	if !errors.Is(err, gateway.ErrExceedsLimit) {
		t.Fatalf("err %v", err)
	}
	if st.FetchedBytes > limit+4*node.ChunkSize {
		t.Fatalf("downloaded %d bytes for a limit of %d", st.FetchedBytes, limit)
	}
}

// Blocks a source lacks come from the next one.
func TestReplicateAcrossSources(t *testing.T) {
	f := newFixture(t)
	partial := node.NewMemStore()
	all := harness.DAGBlocks(t, f.store, f.root)
	i := 0
	for _, b := range all {
		if i%2 == 0 {
			partial.Put(context.Background(), b.Cid, b.Data)
		}
		i++
	}
	half, _ := serveStore(t, partial)
	full, _ := serveStore(t, f.store)
	fe, _ := gateway.NewFetcher([]string{half.URL, full.URL}, gateway.FetcherOptions{})
	dst := node.NewMemStore()
	if _, _, err := gateway.NewReplicator(fe, dst, gateway.ReplicatorOptions{}).Replicate(context.Background(), f.root, nil); err != nil {
		t.Fatal(err)
	}
	sameBlocks(t, all, dst)
	st := fe.Sources()
	if st[1].Blocks == 0 || st[0].Dropped || st[1].Dropped {
		t.Fatalf("sources %+v", st)
	}
}

// A source whose DAG stream carries a block the DAG does not name (after
// the root) is dropped; what it sent that belongs is kept, the rest comes
// from the next source, and the stray block is never stored.
func TestReplicateStreamRefusesStrayBlock(t *testing.T) {
	f := newFixture(t)
	all := harness.DAGBlocks(t, f.store, f.root)
	stray := node.Block{Data: []byte("not in the DAG")}
	stray.Cid = mustRawCID(t, stray.Data)
	honest := gateway.NewTrustless(f.store, gateway.TrustlessOptions{})
	liar := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("format") != "car" {
			honest.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", gateway.CARContentType)
		cw, err := node.NewCARWriter(w, f.root)
		if err != nil {
			return
		}
		rootData, _ := f.store.Get(r.Context(), f.root)
		_ = cw.Put(r.Context(), node.Block{Cid: f.root, Data: rootData})
		_ = cw.Put(r.Context(), stray)
	}))
	full, _ := serveStore(t, f.store)
	fe, _ := gateway.NewFetcher([]string{liar.URL, full.URL}, gateway.FetcherOptions{})
	dst := node.NewMemStore()
	if _, _, err := gateway.NewReplicator(fe, dst, gateway.ReplicatorOptions{}).Replicate(context.Background(), f.root, nil); err != nil {
		t.Fatal(err)
	}
	sameBlocks(t, all, dst)
	if has, _ := dst.Has(context.Background(), stray.Cid); has {
		t.Fatal("the stray block was stored")
	}
	if st := fe.Sources(); !st[0].Dropped || st[1].Dropped {
		t.Fatalf("sources %+v", st)
	}
}

// Replicating a DAG of thousands of tiny blocks costs a couple of
// requests, not one per block, and the real bytes of leaves whose links
// claim less are what MaxBytes counts.
func TestReplicateTinyBlocksStreamed(t *testing.T) {
	src := node.NewMemStore()
	dir := ft.EmptyDirNode()
	dir.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256})
	var total int64
	for i := range 3000 {
		data := []byte(fmt.Sprintf("tiny block %06d", i))
		c := mustRawCID(t, data)
		_ = src.Put(context.Background(), c, data)
		if err := dir.AddRawLink(fmt.Sprintf("f%06d", i), &ipld.Link{Size: 1, Cid: c}); err != nil {
			t.Fatal(err)
		}
		total += int64(len(data))
	}
	_ = src.Put(context.Background(), dir.Cid(), dir.RawData())
	total += int64(len(dir.RawData()))
	srv, reqs := serveStore(t, src)
	fe, _ := gateway.NewFetcher([]string{srv.URL}, gateway.FetcherOptions{})
	dst := node.NewMemStore()
	_, st, err := gateway.NewReplicator(fe, dst, gateway.ReplicatorOptions{}).Replicate(context.Background(), dir.Cid(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blocks != 3001 || st.Fetched != 3001 || st.Bytes != total || reqs.n.Load() > 2 {
		t.Fatalf("stats %+v in %d requests; want 3001 blocks, %d bytes, 2 requests", st, reqs.n.Load(), total)
	}
	_, _, err = gateway.NewReplicator(fe, node.NewMemStore(), gateway.ReplicatorOptions{MaxBytes: total - 100}).Replicate(context.Background(), dir.Cid(), nil)
	if !errors.Is(err, gateway.ErrExceedsLimit) {
		t.Fatalf("over the limit by real bytes: %v", err)
	}
}

// lookupCounter is a Blockstore counting the lookups made of it.
type lookupCounter struct {
	node.Blockstore
	n atomic.Int64
}

func (l *lookupCounter) Has(ctx context.Context, c cid.Cid) (bool, error) {
	l.n.Add(1)
	return l.Blockstore.Has(ctx, c)
}

func (l *lookupCounter) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	l.n.Add(1)
	return l.Blockstore.Get(ctx, c)
}

func (l *lookupCounter) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	l.n.Add(1)
	return l.Blockstore.GetSize(ctx, c)
}

// A streamed DAG is written as it arrives, with no store lookup per block
// received: the lookups are a handful, whatever the number of blocks.
func TestReplicateStreamLooksUpNoBlock(t *testing.T) {
	src := node.NewMemStore()
	dir := ft.EmptyDirNode()
	dir.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256})
	for i := range 2000 {
		data := []byte(fmt.Sprintf("tiny block %06d", i))
		c := mustRawCID(t, data)
		_ = src.Put(context.Background(), c, data)
		if err := dir.AddRawLink(fmt.Sprintf("f%06d", i), &ipld.Link{Size: 1, Cid: c}); err != nil {
			t.Fatal(err)
		}
	}
	_ = src.Put(context.Background(), dir.Cid(), dir.RawData())
	srv, _ := serveStore(t, src)
	fe, _ := gateway.NewFetcher([]string{srv.URL}, gateway.FetcherOptions{})
	dst := &lookupCounter{Blockstore: node.NewMemStore()}
	_, st, err := gateway.NewReplicator(fe, dst, gateway.ReplicatorOptions{}).Replicate(context.Background(), dir.Cid(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Fetched != 2001 {
		t.Fatalf("fetched %d blocks, want 2001", st.Fetched)
	}
	if n := dst.n.Load(); n > 10 {
		t.Fatalf("%d store lookups for a streamed DAG of 2001 blocks; want a handful", n)
	}
}

func mustRawCID(t *testing.T, data []byte) cid.Cid {
	t.Helper()
	h, err := mh.Sum(data, mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}
