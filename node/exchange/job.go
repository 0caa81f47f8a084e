package exchange

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// How a Fetch is split (README.md, "Fetching"):
//
//   - The head request asks one peer for the request itself, with a file's
//     entity-bytes capped at FirstBytes: the blocks proving the path, the
//     terminal block, a directory's HAMT shards, a small file whole. One
//     round trip for small things.
//   - If the terminal is a file with more bytes wanted, the rest is cut into
//     RangeSize entity-bytes requests on the file's own CID, spread over
//     peers (each answer carries the interior nodes it needs, so every
//     answer is verified by node.Traverse on its own).
//   - If dag-scope=all and the terminal is a directory, each entry becomes a
//     request of its own: dag-scope=all in one request if its Tsize is at
//     most RangeSize, else a head request that splits again.
//
// Peers pull requests as their slots free up, so fast peers do more; once
// nothing is left to start, requests older than the hedge threshold are
// duplicated on another peer and the first answer wins.

type taskKind int

const (
	kindHead   taskKind = iota // the first request of an entity; plans the rest
	kindRange                  // a byte range of a file
	kindWhole                  // a whole sub-DAG, small enough for one request
	kindBlocks                 // a list of blocks
)

// task is one request, tried on peers until one answers it.
type task struct {
	kind   taskKind
	req    node.Request // DAG kinds: what is asked
	orig   node.Request // kindHead: what is wanted
	blocks []cid.Cid    // kindBlocks: still wanted; only execute touches it
	final  *node.Result // kindHead: node.Traverse's result for orig
	hedge  chan struct{}

	started   time.Time // guarded by job.mu
	hedgeSent bool      // guarded by job.mu
	gotData   atomic.Bool
}

func newTask(kind taskKind, req node.Request) *task {
	return &task{kind: kind, req: req, hedge: make(chan struct{}, 1)}
}

// maxActiveTasks caps one job's concurrent tasks; the rest queue.
const maxActiveTasks = 256

// hedgeTick is how often a job looks for requests to hedge.
const hedgeTick = 20 * time.Millisecond

// job is one Fetch or FetchBlocks call.
type job struct {
	f        *Fetcher
	ctx      context.Context
	cancel   context.CancelCauseFunc
	stop     func() bool
	sink     *node.BatchWriter
	start    time.Time
	peerData atomic.Bool // some peer sent a block for this job

	mu          sync.Mutex
	queue       []*task
	active      int
	outstanding int
	running     map[*task]struct{}
	waiting     int // tasks waiting for a peer
	err         error
	lastErr     error
	incomplete  bool // some task did not finish
	durSum      time.Duration
	durN        int
	done        chan struct{}
	wg          sync.WaitGroup
}

func (f *Fetcher) newJob(ctx context.Context) *job {
	jctx, cancel := context.WithCancelCause(ctx)
	j := &job{
		f:       f,
		ctx:     jctx,
		cancel:  cancel,
		sink:    node.NewBatchWriter(f.cfg.Store, f.cfg.BatchBytes),
		start:   f.cfg.Clock.Now(),
		running: make(map[*task]struct{}),
		done:    make(chan struct{}),
	}
	j.stop = context.AfterFunc(f.ctx, func() { cancel(ErrClosed) })
	return j
}

// headTask returns the head request for what the caller wants.
func (j *job) headTask(orig node.Request) *task {
	orig = j.resolveLocal(orig)
	req := orig
	if orig.Scope != node.ScopeBlock {
		req.Scope = node.ScopeEntity
		req.Bytes = capRange(orig, j.f.cfg.FirstBytes)
	}
	t := newTask(kindHead, req)
	t.orig = orig
	return t
}

// resolveLocal walks req.Path from req.Root through the blocks already
// held (verified as they are read) as far as they reach, and returns req
// rooted at the last CID reached (a verified link, whose block need not be
// held): peers are asked only for the rest, so a page's hundredth file does
// not carry its directories again. The entity at the end, and so
// node.Traverse's result, is the same.
func (j *job) resolveLocal(req node.Request) node.Request {
	cur, i := req.Root, 0
	for ; i < len(req.Path); i++ {
		n, err := j.f.dirs.node(j.ctx, j.sink, cur)
		if err != nil || !n.IsDir() {
			break
		}
		if n.Kind == node.KindHAMTShard {
			// Sharded: let node.Resolve find the entry through the shards.
			child, err := node.Resolve(j.ctx, verifying(j.sink), cur, req.Path[i:i+1])
			if err != nil {
				break
			}
			cur = child.Cid
			continue
		}
		l, ok := findLink(n, req.Path[i])
		if !ok {
			break // the peer's answer will prove there is no such path
		}
		cur = l.Cid
	}
	req.Root, req.Path = cur, req.Path[i:]
	return req
}

// findLink returns the link named name of a basic directory.
func findLink(dir *node.Node, name string) (node.Link, bool) {
	i := sort.Search(len(dir.Links), func(i int) bool { return dir.Links[i].Name >= name })
	if i < len(dir.Links) && dir.Links[i].Name == name {
		return dir.Links[i], true
	}
	for _, l := range dir.Links { // unsorted directories from other encoders
		if l.Name == name {
			return l, true
		}
	}
	return node.Link{}, false
}

// verifying wraps g so every block it returns is checked against its CID.
func verifying(g node.Getter) node.Getter {
	return node.GetterFunc(func(ctx context.Context, c cid.Cid) ([]byte, error) {
		d, err := g.Get(ctx, c)
		if err != nil {
			return nil, err
		}
		return d, node.Verify(c, d)
	})
}

// dirCache keeps decoded, verified directory nodes, so resolving the paths
// of many files in one directory decodes it once. Nodes are immutable.
type dirCache struct {
	mu    sync.Mutex
	m     map[string]*node.Node
	order []string // insertion order, for eviction
}

const dirCacheSize = 1024

func (d *dirCache) node(ctx context.Context, g node.Getter, c cid.Cid) (*node.Node, error) {
	k := c.KeyString()
	d.mu.Lock()
	n := d.m[k]
	d.mu.Unlock()
	if n != nil {
		return n, nil
	}
	n, _, err := node.GetNode(ctx, verifying(g), c)
	if err != nil || !n.IsDir() {
		return n, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = make(map[string]*node.Node)
	}
	if _, ok := d.m[k]; !ok {
		if len(d.order) >= dirCacheSize {
			delete(d.m, d.order[0])
			d.order = d.order[1:]
		}
		d.m[k] = n
		d.order = append(d.order, k)
	}
	return n, nil
}

// capRange returns entity-bytes asking for the first first bytes of what
// orig wants; a range relative to the end cannot be capped before the size
// is known and is kept.
func capRange(orig node.Request, first int64) *node.ByteRange {
	r := orig.Bytes
	if orig.Scope == node.ScopeAll || r == nil {
		return &node.ByteRange{From: 0, To: first - 1}
	}
	if r.From < 0 || (!r.ToEnd && r.To < 0) {
		return r
	}
	to := r.From + first - 1
	if !r.ToEnd {
		to = min(to, r.To)
	}
	return &node.ByteRange{From: r.From, To: to}
}

func (j *job) add(t *task) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.outstanding++
	j.queue = append(j.queue, t)
	j.pumpLocked()
}

func (j *job) pumpLocked() {
	for j.active < maxActiveTasks && len(j.queue) > 0 {
		t := j.queue[0]
		j.queue[0] = nil
		j.queue = j.queue[1:]
		j.active++
		j.wg.Add(1)
		go j.run(t) // owned by j: wait waits on j.wg
	}
}

func (j *job) run(t *task) {
	defer func() {
		j.mu.Lock()
		j.active--
		j.outstanding--
		if j.outstanding == 0 {
			close(j.done)
		}
		j.pumpLocked()
		j.mu.Unlock()
		j.wg.Done()
	}()
	var err error
	if err = j.ctx.Err(); err == nil {
		var res *node.Result
		if res, err = j.execute(t); err == nil {
			err = j.plan(t, res)
		}
	}
	if err != nil {
		j.mu.Lock()
		j.incomplete = true
		j.mu.Unlock()
		if j.ctx.Err() == nil { // else the job is ending for its own reason
			j.fail(err)
		}
	}
}

func (j *job) fail(err error) {
	j.mu.Lock()
	if j.err == nil {
		j.err = err
	}
	j.mu.Unlock()
	j.cancel(err)
}

// wait runs the hedging clock until every task is done or the job fails,
// then stores what is pending.
func (j *job) wait() error {
	defer j.stop()
	clk := j.f.cfg.Clock
wait:
	for {
		tick := clk.NewTimer(hedgeTick)
		select {
		case <-j.done:
			tick.Stop()
			break wait
		case <-j.ctx.Done():
			tick.Stop()
			break wait
		case <-tick.C():
			j.checkHedges()
		}
	}
	cause := context.Cause(j.ctx) // before our own cancel below
	j.cancel(nil)
	j.wg.Wait()
	j.mu.Lock()
	err := j.err
	if err == nil && j.incomplete {
		err = cause
		if err == nil {
			err = ErrClosed
		}
	}
	j.mu.Unlock()
	// Verified blocks are kept even if the job failed.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), 30*time.Second)
	defer cancel()
	if ferr := j.sink.Flush(flushCtx); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

func (j *job) checkHedges() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.queue) > 0 || j.waiting > 0 {
		return
	}
	threshold := j.f.cfg.HedgeAfter
	if j.durN > 0 {
		threshold = max(threshold, 3*j.durSum/time.Duration(j.durN))
	}
	now := j.f.cfg.Clock.Now()
	for t := range j.running {
		if !t.hedgeSent && t.kind != kindBlocks && now.Sub(t.started) > threshold {
			t.hedgeSent = true
			select {
			case t.hedge <- struct{}{}:
			default:
			}
		}
	}
}

// attemptResult is how one attempt at a task ended.
type attemptResult struct {
	peer     string // "" for the fallback
	res      *node.Result
	missing  []cid.Cid // kindBlocks: blocks the peer does not hold
	err      error
	fallback bool
}

// execute runs t to completion: locally if the store has it all, else on
// peers (retrying elsewhere, hedging when told) and the fallback.
func (j *job) execute(t *task) (*node.Result, error) {
	if t.kind != kindBlocks {
		if ok, _ := j.sink.Has(j.ctx, t.req.Root); ok {
			if res, err := node.Traverse(j.ctx, j.sink, t.req, func(node.Block) error { return nil }); err == nil {
				return res, nil // all held already (and verified again)
			}
		}
	}
	ctx, cancel := context.WithCancel(j.ctx)
	results := make(chan attemptResult, 4)
	nrunning := 0
	defer func() {
		cancel()
		for ; nrunning > 0; nrunning-- { // attempts are owned here
			<-results
		}
		j.mu.Lock()
		delete(j.running, t)
		j.mu.Unlock()
	}()
	j.mu.Lock()
	t.started = j.f.cfg.Clock.Now()
	j.running[t] = struct{}{}
	j.mu.Unlock()

	cfg := &j.f.cfg
	big := t.kind == kindRange
	exclude := make(map[string]bool)
	running := make(map[string]bool)
	attempts := 0
	hedged, fallbackUsed := false, false
	var lastErr error
	var fbTimer <-chan time.Time
	if cfg.Fallback != nil {
		tm := cfg.Clock.NewTimer(cfg.FallbackAfter)
		defer tm.Stop()
		fbTimer = tm.C()
	}
	// Attempts get the blocks still wanted when they start: t.blocks is
	// this goroutine's alone, narrowed as peers answer MISSING while other
	// attempts (the fallback) may still be reading the list they got.
	launch := func(l *lease) {
		attempts++
		nrunning++
		running[l.p.id] = true
		blocks := t.blocks
		go func() { results <- j.attempt(ctx, t, l, blocks) }()
	}
	launchFallback := func() {
		fallbackUsed = true
		nrunning++
		blocks := t.blocks
		go func() { results <- j.attemptFallback(ctx, t, blocks) }()
	}
	for {
		if nrunning == 0 {
			if attempts >= maxAttempts {
				if cfg.Fallback != nil && !fallbackUsed {
					launchFallback()
					continue
				}
				return nil, j.exhausted(lastErr)
			}
			l, err := j.acquire(ctx, exclude, big, !fallbackUsed && cfg.Fallback != nil)
			switch {
			case err == nil:
				launch(l)
				continue
			case errors.Is(err, errNoPeer) || (errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil):
				if cfg.Fallback != nil && !fallbackUsed {
					launchFallback()
					continue
				}
				return nil, j.exhausted(lastErr)
			case ctx.Err() != nil:
				return nil, context.Cause(ctx)
			default:
				return nil, err
			}
		}
		select {
		case r := <-results:
			nrunning--
			delete(running, r.peer)
			if r.err == nil && len(r.missing) == 0 {
				return r.res, nil
			}
			if r.err == nil { // some blocks missing: ask others for those
				t.blocks = r.missing
				r.err = fmt.Errorf("%d blocks: %w", len(r.missing), node.ErrNotFound)
			}
			if isContentErr(r.err) {
				return nil, r.err
			}
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			lastErr = r.err
			j.noteErr(r.err)
			// A busy or stalled peer is not ruled out: its backoff
			// (release) sends the retry to another peer first, and back
			// to it once the backoff ends if no other can serve, so a
			// slow machine or link makes a fetch slower, not failed.
			if !r.fallback && !errors.Is(r.err, ErrBusy) && !errors.Is(r.err, ErrStalled) {
				exclude[r.peer] = true
			}
			j.f.log.Debug("exchange: attempt failed", "peer", r.peer, "fallback", r.fallback, "err", r.err)
		case <-t.hedge:
			if nrunning != 1 || hedged || t.kind == kindBlocks {
				continue
			}
			ex := make(map[string]bool, len(exclude)+len(running))
			for k := range exclude {
				ex[k] = true
			}
			for k := range running {
				ex[k] = true
			}
			if l, err := j.f.acquire(ctx, ex, big, false); err == nil {
				hedged = true
				launch(l)
			}
		case <-fbTimer:
			if !t.gotData.Load() && !fallbackUsed {
				launchFallback()
			}
		}
	}
}

// acquire waits for a peer; while no peer has answered this job and a
// fallback remains, only until FallbackAfter from the job's start.
func (j *job) acquire(ctx context.Context, exclude map[string]bool, big, deadline bool) (*lease, error) {
	j.mu.Lock()
	j.waiting++
	j.mu.Unlock()
	defer func() {
		j.mu.Lock()
		j.waiting--
		j.mu.Unlock()
	}()
	if deadline && !j.peerData.Load() {
		clk := j.f.cfg.Clock
		var cancel context.CancelFunc
		ctx, cancel = withTimeout(ctx, clk, j.start.Add(j.f.cfg.FallbackAfter).Sub(clk.Now()))
		defer cancel()
	}
	return j.f.acquire(ctx, exclude, big, true)
}

// exhausted is the error of a task no peer could serve; last is its last
// attempt's error or, if it made none (every peer gone or banned), the
// job's.
func (j *job) exhausted(last error) error {
	if last == nil {
		j.mu.Lock()
		last = j.lastErr
		j.mu.Unlock()
	}
	if last == nil {
		return ErrNoPeers
	}
	return fmt.Errorf("%w: %w", ErrNoPeers, last)
}

// noteErr remembers the job's latest failed attempt.
func (j *job) noteErr(err error) {
	j.mu.Lock()
	j.lastErr = err
	j.mu.Unlock()
}

// countingSource wraps a blockSource, noting the first block and counting
// bytes.
type countingSource struct {
	src     blockSource
	first   func()
	bytes   int64
	started bool
}

func (c *countingSource) nextBlock(ctx context.Context) (node.Block, error) {
	b, err := c.src.nextBlock(ctx)
	if err == nil {
		if !c.started {
			c.started = true
			c.first()
		}
		c.bytes += int64(len(b.Data))
	}
	return b, err
}

// attempt runs t once on the leased peer; a kindBlocks task asks for
// blocks.
func (j *job) attempt(ctx context.Context, t *task, l *lease, blocks []cid.Cid) attemptResult {
	r := attemptResult{peer: l.p.id}
	start := j.f.cfg.Clock.Now()
	var n int64
	// late is a peer fault (a protocol violation) found after every block
	// of the answer verified: the answer stands, the peer is banned.
	var late error
	if t.kind == kindBlocks {
		r.missing, n, late, r.err = j.attemptBlocks(ctx, t, l, blocks)
	} else {
		var s *stream
		s, r.err = l.cc.open(ctx, wireRequest{DAG: &t.req}, j.f.cfg.Window)
		if r.err == nil {
			src := &countingSource{src: &streamSource{s: s, stall: j.f.cfg.StallTimeout}, first: func() {
				t.gotData.Store(true)
				j.peerData.Store(true)
			}}
			r.res, late, r.err = verifyAnswer(ctx, src, t.req, j.sink)
			n = src.bytes
			if r.err != nil {
				s.cancel()
			}
		}
	}
	if r.err != nil && ctx.Err() != nil {
		r.err = ctx.Err() // lost a hedge race or the job ended: nobody's fault
	}
	if r.err == nil {
		j.mu.Lock()
		j.durSum += j.f.cfg.Clock.Now().Sub(start)
		j.durN++
		j.mu.Unlock()
	}
	j.f.release(l, n, cmp.Or(r.err, late))
	return r
}

// attemptBlocks asks for blocks; each must come in order, as a block
// that hashes to its CID or as MISSING. It returns the blocks missing, the
// bytes of block data received and, if every block verified but the answer
// then broke the protocol, that fault as late.
func (j *job) attemptBlocks(ctx context.Context, t *task, l *lease, blocks []cid.Cid) (missing []cid.Cid, n int64, late, err error) {
	s, err := l.cc.open(ctx, wireRequest{Blocks: blocks}, j.f.cfg.Window)
	if err != nil {
		return nil, 0, nil, err
	}
	err = func() error {
		for _, want := range blocks {
			it, err := s.next(ctx, j.f.cfg.StallTimeout)
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("answer ended before block %s: %w", want, node.ErrUnexpectedBlock)
			}
			if err != nil {
				return err
			}
			if !it.blk.Cid.Equals(want) {
				return fmt.Errorf("got block %s, expected %s: %w", it.blk.Cid, want, node.ErrUnexpectedBlock)
			}
			if it.missing {
				missing = append(missing, want)
				continue
			}
			if err := node.Verify(want, it.blk.Data); err != nil {
				return err
			}
			t.gotData.Store(true)
			j.peerData.Store(true)
			n += int64(len(it.blk.Data))
			if err := j.sink.Put(ctx, it.blk); err != nil {
				return err
			}
		}
		it, err := s.next(ctx, j.f.cfg.StallTimeout)
		switch {
		case err == nil:
			return fmt.Errorf("block %s after the list: %w", it.blk.Cid, node.ErrUnexpectedBlock)
		case isPeerFault(err):
			late = err
		}
		return nil
	}()
	if err != nil {
		s.cancel()
	}
	return missing, n, late, err
}

// attemptFallback runs t through the Fallback; a kindBlocks task asks for
// blocks.
func (j *job) attemptFallback(ctx context.Context, t *task, blocks []cid.Cid) attemptResult {
	r := attemptResult{fallback: true}
	if t.kind == kindBlocks {
		for _, c := range blocks {
			if _, err := j.fallbackDAG(ctx, node.Request{Root: c, Scope: node.ScopeBlock}); err != nil {
				r.err = err
				return r
			}
		}
		return r
	}
	r.res, r.err = j.fallbackDAG(ctx, t.req)
	return r
}

func (j *job) fallbackDAG(ctx context.Context, req node.Request) (*node.Result, error) {
	res, err := j.f.cfg.Fallback.CAR(ctx, req, j.f.cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("fallback: %w", err)
	}
	return res, nil
}

// dedupSource drops blocks seen before in the same answer: a gateway may
// send a CAR with duplicates (dups=y), our traversal reads each once.
type dedupSource struct {
	src  blockSource
	seen map[string]struct{}
}

func (d *dedupSource) nextBlock(ctx context.Context) (node.Block, error) {
	for {
		b, err := d.src.nextBlock(ctx)
		if err != nil {
			return b, err
		}
		k := b.Cid.KeyString()
		if _, dup := d.seen[k]; dup {
			continue
		}
		d.seen[k] = struct{}{}
		return b, nil
	}
}

// plan adds the requests that follow a head request's answer.
func (j *job) plan(t *task, res *node.Result) error {
	if t.kind != kindHead {
		return nil
	}
	orig := t.orig
	n := res.Node
	final := &node.Result{Node: n}
	t.final = final
	cfg := &j.f.cfg
	switch {
	case orig.Scope == node.ScopeBlock:
	case n.IsFile():
		start, end := uint64(0), n.FileSize
		if orig.Scope == node.ScopeEntity {
			if orig.Bytes != nil {
				start, end = orig.Bytes.Bounds(n.FileSize)
			}
			final.Start, final.End = start, end
		}
		if len(n.Links) == 0 {
			return nil // one block: the head request had it all
		}
		from := max(start, res.End)
		if res.Start > start {
			from = start // the head was not capped as planned: ask for it all
		}
		step := uint64(cfg.RangeSize)
		for a := from; a < end; a += step {
			b := min(a+step, end)
			j.add(newTask(kindRange, node.Request{
				Root:  n.Cid,
				Scope: node.ScopeEntity,
				Bytes: &node.ByteRange{From: int64(a), To: int64(b - 1)},
			}))
		}
	case n.IsDir() && orig.Scope == node.ScopeAll:
		for e, err := range node.Entries(j.ctx, j.sink, n) {
			if err != nil {
				return err
			}
			sub := node.Request{Root: e.Cid, Scope: node.ScopeAll}
			if e.Tsize > 0 && e.Tsize <= uint64(cfg.RangeSize) {
				j.add(newTask(kindWhole, sub))
			} else {
				j.add(j.headTask(sub))
			}
		}
	}
	return nil
}
