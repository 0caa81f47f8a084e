package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	cid "github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"

	"github.com/hearthcdn/hearth/node"
)

// Replicator copies whole DAGs from a Fetcher's sources into a
// node.Blockstore, downloading only the blocks the store lacks.
//
// It walks the DAG from its root: a dag-pb node is read from the store
// (verified; a corrupt copy is fetched again) and decoded for its links; a
// raw leaf is only sized in the store. A dag-pb node the store lacks is
// fetched with the whole DAG under it as one dag-scope=all CAR stream
// (see subtree), so a DAG of many tiny blocks costs one request rather
// than one per block; if no source can stream it, it is fetched alone and
// the walk goes on under it. A missing raw leaf is fetched alone, one
// ?format=raw request each (so a resumed replication costs the missing
// blocks, and each may come from a different source). Concurrency workers
// do the lookups and requests; fetched blocks are written in durable
// batches. Memory is bounded by Concurrency blocks in flight plus a batch
// per writer, plus the set of CIDs the walk meets in the store (a
// streamed subtree adds none).
//
// Sizes are the lengths of the blocks themselves, never the sizes their
// parents claim, so a DAG that understates its size (Tsize) is priced at
// what it really costs to store.
//
// A walk always descends into stored dag-pb nodes, so a store left
// half-filled by a crash is completed on the next run without assuming
// that a stored parent implies stored children.
type Replicator struct {
	f    *Fetcher
	bs   node.Blockstore
	opts ReplicatorOptions
}

// ReplicatorOptions tune a Replicator. The zero value gives the defaults.
type ReplicatorOptions struct {
	// Concurrency is the number of parallel block requests; 0 means 16.
	Concurrency int
	// MaxBytes, if positive, bounds the DAG's size: the sum of the real
	// lengths of its distinct blocks, counted as they are met or received.
	// Replication stops with an error wrapping ErrExceedsLimit as soon as
	// the blocks met pass it, so at most about MaxBytes are downloaded for a
	// DAG that does not fit, whatever sizes its links claim.
	MaxBytes int64
	// BatchBytes is the size of a durable write batch; 0 means 4 MiB.
	BatchBytes int
	// FlushEvery bounds how long a fetched block waits to be written; 0 means 200 ms.
	FlushEvery time.Duration
	// Writers is the number of batches written at once; 0 means 2, so that
	// one batch fills while another is synced to disk.
	Writers int
	// Logger, nil means slog.Default().
	Logger *slog.Logger
}

// ReplicationStats describe one replication.
type ReplicationStats struct {
	Blocks       int64 // distinct blocks in the DAG (a block both streamed and met apart counts twice)
	Bytes        int64 // their total real length, counted likewise
	Fetched      int64 // blocks downloaded and stored
	FetchedBytes int64 // their total length
}

// NewReplicator returns a Replicator storing into bs.
func NewReplicator(f *Fetcher, bs node.Blockstore, opts ReplicatorOptions) *Replicator {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 4 << 20
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 200 * time.Millisecond
	}
	if opts.Writers <= 0 {
		opts.Writers = 2
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Replicator{f: f, bs: bs, opts: opts}
}

// Replicate makes bs hold the blocks of path under root and the whole DAG
// at its end, and returns the CID at the end of the path. When it returns
// nil every block is durably stored. Errors wrap ErrExceedsLimit, the
// Fetcher's errors (ErrNoSources, ...), content errors (node.ErrNoSuchPath,
// node.ErrBadNode) or the store's.
func (r *Replicator) Replicate(ctx context.Context, root cid.Cid, path []string) (cid.Cid, ReplicationStats, error) {
	term := root
	var st ReplicationStats
	if len(path) > 0 {
		var err error
		if term, err = r.resolve(ctx, root, path, &st); err != nil {
			return cid.Undef, st, err
		}
	}
	err := r.walk(ctx, term, &st)
	return term, st, err
}

// resolve makes the store hold the blocks proving path and returns the CID
// at its end. When the root is missing it asks for them all in one
// dag-scope=block CAR; any block still missing is then fetched alone.
func (r *Replicator) resolve(ctx context.Context, root cid.Cid, path []string, st *ReplicationStats) (cid.Cid, error) {
	count := func(blocks int, bytes int64) {
		st.Fetched += int64(blocks)
		st.FetchedBytes += bytes
		if r.f.opts.OnStored != nil {
			r.f.opts.OnStored(blocks, bytes)
		}
	}
	if has, err := r.bs.Has(ctx, root); err != nil {
		return cid.Undef, err
	} else if !has {
		sub := *r.f
		sub.opts.OnStored = count
		if _, err := sub.CAR(ctx, node.Request{Root: root, Path: path, Scope: node.ScopeBlock}, r.bs); err != nil {
			if ctx.Err() != nil {
				return cid.Undef, ctx.Err()
			}
			if _, _, fatal := classify(err); fatal {
				return cid.Undef, err
			}
			r.opts.Logger.Debug("path CAR failed; fetching blocks one by one", "root", root, "err", err)
		}
	}
	g := node.GetterFunc(func(ctx context.Context, c cid.Cid) ([]byte, error) {
		d, err := r.bs.Get(ctx, c)
		if err == nil && node.Verify(c, d) == nil {
			return d, nil
		}
		if err != nil && !errors.Is(err, node.ErrNotFound) {
			return nil, err
		}
		if d, err = r.f.Block(ctx, c); err != nil {
			return nil, err
		}
		if err := r.bs.Put(ctx, c, d); err != nil {
			return nil, fmt.Errorf("storing %s: %w", c, err)
		}
		count(1, int64(len(d)))
		return d, nil
	})
	n, err := node.Resolve(ctx, g, root, path)
	if err != nil {
		return cid.Undef, fmt.Errorf("resolving %s: %w", ipfsPath(root, path), err)
	}
	return n.Cid, nil
}

// visit is one unit of work: a block to check or fetch.
type visit struct {
	c cid.Cid
}

// visited is a worker's answer: the links to follow.
type visited struct {
	links []visit
	err   error
}

// tally counts the blocks and bytes a walk meets and enforces MaxBytes.
// Safe for concurrent use.
type tally struct {
	root          cid.Cid
	limit         int64
	blocks, bytes atomic.Int64
}

// add counts one block of n bytes; past the limit it fails with an error
// wrapping ErrExceedsLimit.
func (t *tally) add(n int) error {
	b := t.bytes.Add(int64(n))
	k := t.blocks.Add(1)
	if t.limit > 0 && b > t.limit {
		return fmt.Errorf("DAG %s: more than %d bytes in %d blocks, limit %d: %w", t.root, b, k, t.limit, ErrExceedsLimit)
	}
	return nil
}

func (r *Replicator) walk(ctx context.Context, root cid.Cid, st *ReplicationStats) error {
	g, gctx := errgroup.WithContext(ctx)
	w := &batchWriter{bs: r.bs, limit: r.opts.BatchBytes, every: r.opts.FlushEvery,
		in: make(chan node.Block, r.opts.Concurrency), onStored: r.f.opts.OnStored}
	for range r.opts.Writers {
		g.Go(func() error { return w.run(gctx) })
	}

	t := &tally{root: root, limit: r.opts.MaxBytes}
	jobs := make(chan visit)
	results := make(chan visited)
	wctx, cancelWorkers := context.WithCancel(gctx)
	defer cancelWorkers()
	var workers errgroup.Group
	for range r.opts.Concurrency {
		workers.Go(func() error {
			for v := range jobs {
				res := r.visit(wctx, v, w, t)
				select {
				case results <- res:
				case <-wctx.Done():
					return nil
				}
			}
			return nil
		})
	}

	coordErr := r.coordinate(wctx, root, jobs, results)
	cancelWorkers() // unblocks workers still holding a result
	close(jobs)
	_ = workers.Wait()
	close(w.in)
	werr := g.Wait() // the writer's error, after its last flush
	st.Blocks += t.blocks.Load()
	st.Bytes += t.bytes.Load()
	st.Fetched += w.blocks.Load()
	st.FetchedBytes += w.bytes.Load()
	// The root cause first: a writer failure cancels the walk, which then
	// reports only the cancellation.
	if werr != nil && (coordErr == nil || errors.Is(coordErr, context.Canceled)) && ctx.Err() == nil {
		return werr
	}
	if coordErr != nil {
		return coordErr
	}
	return werr
}

// coordinate hands out visits and collects their links until the DAG is
// exhausted. It owns the queue and the set of CIDs seen.
func (r *Replicator) coordinate(ctx context.Context, root cid.Cid, jobs chan<- visit, results <-chan visited) error {
	seen := map[string]struct{}{root.KeyString(): {}}
	queue := []visit{{c: root}}
	inflight := 0
	for len(queue) > 0 || inflight > 0 {
		var send chan<- visit
		var next visit
		if len(queue) > 0 {
			// Last in, first out: depth first, which keeps the queue short.
			send, next = jobs, queue[len(queue)-1]
		}
		select {
		case send <- next:
			queue = queue[:len(queue)-1]
			inflight++
		case res := <-results:
			inflight--
			if res.err != nil {
				return res.err
			}
			for _, l := range res.links {
				k := l.c.KeyString()
				if _, ok := seen[k]; ok {
					continue
				}
				seen[k] = struct{}{}
				queue = append(queue, l)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// visit checks one block and fetches what the store lacks: a raw leaf
// alone, a dag-pb node with the DAG under it (subtree) or, when no source
// can stream that, alone.
func (r *Replicator) visit(ctx context.Context, v visit, w *batchWriter, t *tally) visited {
	if v.c.Type() == node.CodecRaw {
		n, err := r.bs.GetSize(ctx, v.c)
		switch {
		case err == nil:
			return visited{err: t.add(n)}
		case !errors.Is(err, node.ErrNotFound):
			return visited{err: fmt.Errorf("checking store for %s: %w", v.c, err)}
		}
		d, err := r.f.Block(ctx, v.c)
		if err != nil {
			return visited{err: err}
		}
		if err := t.add(len(d)); err != nil {
			return visited{err: err}
		}
		return visited{err: w.put(ctx, node.Block{Cid: v.c, Data: d})}
	}
	d, err := r.bs.Get(ctx, v.c)
	switch {
	case err == nil:
		if verr := node.Verify(v.c, d); verr != nil {
			// Fetched alone below, so that the good copy replaces it.
			r.opts.Logger.Warn("stored block is corrupt; fetching it again", "cid", v.c, "err", verr)
			d = nil
		}
	case !errors.Is(err, node.ErrNotFound):
		return visited{err: fmt.Errorf("reading %s: %w", v.c, err)}
	}
	missing := d == nil && err != nil // not stored, rather than corrupt
	corrupt := d == nil && err == nil
	if d == nil {
		if d, err = r.f.Block(ctx, v.c); err != nil {
			return visited{err: err}
		}
	}
	n, err := node.Decode(v.c, d)
	if err != nil {
		return visited{err: err}
	}
	if missing && len(n.Links) > 0 {
		// A node never stored whose first child is missing too (the first
		// block a depth-first stream sends after it): stream the DAG under
		// it. When its children are stored (only the node was lost), the
		// walk goes on block by block, fetching only what is missing.
		k, err := r.bs.Has(ctx, n.Links[0].Cid)
		if err != nil {
			return visited{err: fmt.Errorf("checking store for %s: %w", n.Links[0].Cid, err)}
		}
		if !k {
			serr := r.subtree(ctx, v.c, t.add, w.stored)
			if serr == nil {
				return visited{} // the whole DAG under v.c is stored
			}
			if _, _, fatal := classify(serr); fatal || ctx.Err() != nil {
				return visited{err: serr}
			}
			// What arrived is stored: the walk below fetches only the rest.
			r.opts.Logger.Debug("streaming a DAG failed; fetching it block by block", "cid", v.c, "err", serr)
		}
	}
	if missing {
		// A failed stream may have stored it already.
		has, err := r.bs.Has(ctx, v.c)
		if err != nil {
			return visited{err: fmt.Errorf("checking store for %s: %w", v.c, err)}
		}
		missing = !has
	}
	if missing || corrupt {
		if err := w.put(ctx, node.Block{Cid: v.c, Data: d}); err != nil {
			return visited{err: err}
		}
	}
	if err := t.add(len(d)); err != nil {
		return visited{err: err}
	}
	res := visited{links: make([]visit, len(n.Links))}
	for i, l := range n.Links {
		res.links[i] = visit{c: l.Cid}
	}
	return res
}

// batchWriter stores fetched blocks in durable batches: when BatchBytes
// have gathered, when FlushEvery has passed, and at the end. Several run
// goroutines share its input, each with its own batch; they are the only
// goroutines writing during a walk.
type batchWriter struct {
	bs       node.Blockstore
	limit    int
	every    time.Duration
	in       chan node.Block
	onStored func(int, int64)

	blocks, bytes atomic.Int64 // stored so far
}

// stored counts blocks written by someone else for this walk (a subtree
// stream) as if this writer had written them.
func (w *batchWriter) stored(blocks int, bytes int64) {
	w.blocks.Add(int64(blocks))
	w.bytes.Add(bytes)
	if w.onStored != nil {
		w.onStored(blocks, bytes)
	}
}

func (w *batchWriter) put(ctx context.Context, b node.Block) error {
	select {
	case w.in <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *batchWriter) run(ctx context.Context) error {
	var batch []node.Block
	size := 0
	flush := func(ctx context.Context) error {
		if len(batch) == 0 {
			return nil
		}
		if err := w.bs.PutMany(ctx, batch); err != nil {
			return fmt.Errorf("storing %d blocks: %w", len(batch), err)
		}
		w.blocks.Add(int64(len(batch)))
		w.bytes.Add(int64(size))
		if w.onStored != nil {
			w.onStored(len(batch), int64(size))
		}
		batch, size = nil, 0
		return nil
	}
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		select {
		case b, ok := <-w.in:
			if !ok {
				return flush(ctx)
			}
			batch = append(batch, b)
			size += len(b.Data)
			if size >= w.limit {
				if err := flush(ctx); err != nil {
					return err
				}
			}
		case <-tick.C:
			if err := flush(ctx); err != nil {
				return err
			}
		case <-ctx.Done():
			// Keep what was verified: it need not be downloaded again.
			_ = flush(context.WithoutCancel(ctx))
			return ctx.Err()
		}
	}
}
