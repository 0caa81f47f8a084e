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
// (verified; a corrupt copy is fetched again) or fetched, then decoded for
// its links; a raw leaf is only checked for presence. Missing blocks are
// fetched by Concurrency workers, one ?format=raw request each (so a
// resumed replication costs exactly the missing blocks, and each may come
// from a different source), and written in durable batches by one writer.
// Memory is bounded by Concurrency blocks in flight plus one batch, plus
// the set of CIDs seen.
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
	// MaxBytes, if positive, bounds the DAG's size: the sum of the lengths
	// of its distinct blocks. Replication stops with an error wrapping
	// ErrExceedsLimit as soon as the blocks seen pass it, so at most about
	// MaxBytes are downloaded for a DAG that does not fit.
	MaxBytes int64
	// BatchBytes is the size of a durable write batch; 0 means 4 MiB.
	BatchBytes int
	// FlushEvery bounds how long a fetched block waits to be written; 0 means 200 ms.
	FlushEvery time.Duration
	// Present, if set, reports blocks known to be stored, sparing a store
	// lookup (which for a large leaf reads it): a seeder passes the blocks
	// of its pinned DAGs, which it keeps complete. It must be safe for
	// concurrent use. dag-pb nodes are read from the store regardless.
	Present func(cid.Cid) bool
	// Writers is the number of batches written at once; 0 means 2, so that
	// one batch fills while another is synced to disk.
	Writers int
	// Logger, nil means slog.Default().
	Logger *slog.Logger
}

// ReplicationStats describe one replication.
type ReplicationStats struct {
	Blocks       int64 // distinct blocks in the DAG
	Bytes        int64 // their total length
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

// visit is one unit of work: a block to check or fetch. size is what the
// parent says the block holds (0: unknown).
type visit struct {
	c    cid.Cid
	size uint64
}

// visited is a worker's answer: the block's size, whether it was
// downloaded, and the links to follow.
type visited struct {
	size    int64
	fetched bool
	links   []visit
	err     error
}

func (r *Replicator) walk(ctx context.Context, root cid.Cid, st *ReplicationStats) error {
	g, gctx := errgroup.WithContext(ctx)
	w := &batchWriter{bs: r.bs, limit: r.opts.BatchBytes, every: r.opts.FlushEvery,
		in: make(chan node.Block, r.opts.Concurrency), onStored: r.f.opts.OnStored}
	for range r.opts.Writers {
		g.Go(func() error { return w.run(gctx) })
	}

	jobs := make(chan visit)
	results := make(chan visited)
	wctx, cancelWorkers := context.WithCancel(gctx)
	defer cancelWorkers()
	var workers errgroup.Group
	for range r.opts.Concurrency {
		workers.Go(func() error {
			for v := range jobs {
				res := r.visit(wctx, v, w)
				select {
				case results <- res:
				case <-wctx.Done():
					return nil
				}
			}
			return nil
		})
	}

	coordErr := r.coordinate(wctx, root, jobs, results, st)
	cancelWorkers() // unblocks workers still holding a result
	close(jobs)
	_ = workers.Wait()
	close(w.in)
	werr := g.Wait() // the writer's error, after its last flush
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
func (r *Replicator) coordinate(ctx context.Context, root cid.Cid, jobs chan<- visit, results <-chan visited, st *ReplicationStats) error {
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
			st.Blocks++
			st.Bytes += res.size
			if r.opts.MaxBytes > 0 && st.Bytes > r.opts.MaxBytes {
				return fmt.Errorf("DAG %s: more than %d bytes in %d blocks, limit %d: %w",
					root, st.Bytes, st.Blocks, r.opts.MaxBytes, ErrExceedsLimit)
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

// visit checks one block and fetches it if the store lacks it.
func (r *Replicator) visit(ctx context.Context, v visit, w *batchWriter) visited {
	if v.c.Type() == node.CodecRaw {
		if r.opts.Present != nil && r.opts.Present(v.c) {
			return visited{size: int64(v.size)}
		}
		has, err := r.bs.Has(ctx, v.c)
		if err != nil {
			return visited{err: fmt.Errorf("checking store for %s: %w", v.c, err)}
		}
		if has {
			return visited{size: int64(v.size)}
		}
		d, err := r.f.Block(ctx, v.c)
		if err != nil {
			return visited{err: err}
		}
		if err := w.put(ctx, node.Block{Cid: v.c, Data: d}); err != nil {
			return visited{err: err}
		}
		return visited{size: int64(len(d)), fetched: true}
	}
	fetched := false
	d, err := r.bs.Get(ctx, v.c)
	switch {
	case err == nil:
		if verr := node.Verify(v.c, d); verr != nil {
			r.opts.Logger.Warn("stored block is corrupt; fetching it again", "cid", v.c, "err", verr)
			d, err = nil, node.ErrNotFound
		}
	case !errors.Is(err, node.ErrNotFound):
		return visited{err: fmt.Errorf("reading %s: %w", v.c, err)}
	}
	if d == nil {
		if d, err = r.f.Block(ctx, v.c); err != nil {
			return visited{err: err}
		}
		if err := w.put(ctx, node.Block{Cid: v.c, Data: d}); err != nil {
			return visited{err: err}
		}
		fetched = true
	}
	n, err := node.Decode(v.c, d)
	if err != nil {
		return visited{err: err}
	}
	res := visited{size: int64(len(d)), fetched: fetched, links: make([]visit, len(n.Links))}
	for i, l := range n.Links {
		size := l.Tsize
		if n.IsFile() && i < len(n.BlockSizes) && l.Cid.Type() == node.CodecRaw {
			size = n.BlockSizes[i] // exact for a raw leaf
		}
		res.links[i] = visit{c: l.Cid, size: size}
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
