package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// session is the node.Getter one response reads through: blocks it holds,
// then the cache, then a fetch from the current source. Get is called by
// one goroutine at a time (the one serving the response); the fetch runs
// in a goroutine the session owns.
type session struct {
	ctx     context.Context
	cache   Cache
	sources []Source
	next    int // index in sources of the source fetches use
	window  int
	stats   *Stats

	// kept holds the interior (dag-pb) blocks this session has read: small,
	// and read again by each phase (path, index.html, sniffing, body).
	kept map[string][]byte
	// recent holds the last few leaves read, for files that repeat a leaf
	// (sent once by the source) when the cache drops blocks.
	recent recentBlocks
	// want returns what a fetch started now should ask for; each phase of
	// a response sets it, and the body's depends on the bytes written.
	want func() node.Request
	cur  *fetch
}

func newSession(ctx context.Context, cache Cache, sources []Source, window int, stats *Stats) *session {
	return &session{ctx: ctx, cache: cache, sources: sources, window: window, stats: stats, kept: make(map[string][]byte)}
}

// setWant sets what the next fetch asks for. A fetch already running is
// left alone: its blocks may well be the ones the new phase needs.
func (s *session) setWant(f func() node.Request) { s.want = f }

// Get implements node.Getter. Errors wrap ErrSource when the current
// source failed (retry with the next, see do), ErrNoSource with
// node.ErrNotFound when every source has failed, or the context's error.
func (s *session) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	k := c.KeyString()
	if d, ok := s.kept[k]; ok {
		return d, nil
	}
	if d, ok := s.recent.get(k); ok {
		return d, nil
	}
	if s.cur != nil {
		if d, ok := s.cur.take(k); ok {
			s.keep(c, d)
			return d, nil
		}
	}
	if d, err := s.cache.Get(ctx, c); err == nil {
		if node.Verify(c, d) == nil {
			s.stats.add(FromCache, len(d))
			s.keep(c, d)
			return d, nil
		}
		s.cache.Delete(c) // never served; fetched again below
	}
	for {
		if s.cur == nil {
			if s.next >= len(s.sources) {
				return nil, fmt.Errorf("block %s: %w: %w", c, ErrNoSource, node.ErrNotFound)
			}
			s.cur = startFetch(s.ctx, s.sources[s.next], s.want(), s.cache, s.window, s.stats)
		}
		d, err := s.cur.wait(ctx, k)
		if err == nil {
			s.keep(c, d)
			return d, nil
		}
		var done *doneWithout
		if errors.As(err, &done) && !sameRequest(s.cur.req, s.want()) {
			// The fetch was for an earlier phase or an earlier byte
			// offset: ask the same source for what is wanted now.
			s.stopFetch()
			continue
		}
		return nil, err
	}
}

// keep remembers interior blocks for the session's other phases.
func (s *session) keep(c cid.Cid, d []byte) {
	if c.Type() == node.CodecDagPB {
		s.kept[c.KeyString()] = d
	} else {
		s.recent.add(c.KeyString(), d)
	}
}

// recentBlocks remembers the last few blocks added.
type recentBlocks struct {
	keys [4]string
	data [4][]byte
	next int
}

func (r *recentBlocks) add(k string, d []byte) {
	r.keys[r.next], r.data[r.next] = k, d
	r.next = (r.next + 1) % len(r.keys)
}

func (r *recentBlocks) get(k string) ([]byte, bool) {
	for i, rk := range r.keys {
		if rk == k && r.data[i] != nil {
			return r.data[i], true
		}
	}
	return nil, false
}

// do runs op, and again with the next source each time it fails because
// of its source, until it succeeds, fails otherwise or no source is left.
func (s *session) do(ctx context.Context, op func() error) error {
	for {
		err := op()
		if err == nil || !errors.Is(err, ErrSource) {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		s.stats.failed(s.sources[s.next].Kind(), err)
		s.stopFetch()
		s.next++
		if s.next >= len(s.sources) {
			return fmt.Errorf("%w: last: %w", ErrNoSource, err)
		}
	}
}

// stopFetch cancels the current fetch and waits for its goroutine.
func (s *session) stopFetch() {
	if s.cur != nil {
		s.cur.stop()
		s.cur = nil
	}
}

// close ends the session.
func (s *session) close() { s.stopFetch() }

func sameRequest(a, b node.Request) bool {
	if !a.Root.Equals(b.Root) || a.Scope != b.Scope || len(a.Path) != len(b.Path) {
		return false
	}
	for i := range a.Path {
		if a.Path[i] != b.Path[i] {
			return false
		}
	}
	if (a.Bytes == nil) != (b.Bytes == nil) {
		return false
	}
	return a.Bytes == nil || *a.Bytes == *b.Bytes
}

// doneWithout: a fetch completed without sending a block asked for.
type doneWithout struct{ c string }

func (e *doneWithout) Error() string { return "source finished without block " + e.c }
func (e *doneWithout) Unwrap() error { return ErrSource }

// fetch is one request to one source, verified by node.Traverse as it
// streams; its goroutine delivers each verified block to the waiting
// session, holding at most about window bytes nobody has taken yet unless
// the session is waiting for a block (which may lie further on).
type fetch struct {
	req    node.Request
	kind   Kind
	window int
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine has returned

	mu       sync.Mutex
	blocks   map[string][]byte // verified, not taken yet
	interior map[string][]byte // every dag-pb block delivered, for repeats
	taken    recentBlocks      // the last leaves taken, for repeats
	held     int
	waiters  int
	arrived  chan struct{} // closed and replaced on each delivery and at the end
	wake     chan struct{} // capacity 1: a block was taken or a waiter came
	finished bool
	err      error
}

func startFetch(ctx context.Context, src Source, req node.Request, cache Cache, window int, stats *Stats) *fetch {
	ctx, cancel := context.WithCancel(ctx)
	f := &fetch{
		req: req, kind: src.Kind(), window: window, cancel: cancel,
		done:     make(chan struct{}),
		blocks:   make(map[string][]byte),
		interior: make(map[string][]byte),
		arrived:  make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
	go func() { // owned by the session: stop cancels and waits
		defer close(f.done)
		err := f.run(ctx, src, cache, stats)
		f.mu.Lock()
		f.finished, f.err = true, err
		close(f.arrived)
		f.mu.Unlock()
	}()
	return f
}

func (f *fetch) run(ctx context.Context, src Source, cache Cache, stats *Stats) error {
	st, err := src.Open(ctx, f.req)
	if err != nil {
		return fmt.Errorf("opening %s source: %w", f.kind, err)
	}
	defer st.Close()
	ss := node.NewStreamSource(st.Next)
	// Repeated blocks are not sent twice (dups=n): answer them from what
	// was delivered, else from the cache, verified again.
	ss.Repeat = node.GetterFunc(func(ctx context.Context, c cid.Cid) ([]byte, error) {
		if d, ok := f.lookup(c.KeyString()); ok {
			return d, nil
		}
		d, err := cache.Get(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("repeated block %s no longer held: %w", c, err)
		}
		if err := node.Verify(c, d); err != nil {
			return nil, err
		}
		return d, nil
	})
	_, err = node.Traverse(ctx, ss, f.req, func(b node.Block) error {
		stats.add(f.kind, len(b.Data))
		cache.Put(b)
		return f.deliver(ctx, b)
	})
	return err
}

func (f *fetch) lookup(k string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.blocks[k]; ok {
		return d, true
	}
	if d, ok := f.interior[k]; ok {
		return d, true
	}
	return f.taken.get(k)
}

func (f *fetch) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// deliver hands a verified block to the session, waiting while the
// window is full and nobody waits.
func (f *fetch) deliver(ctx context.Context, b node.Block) error {
	f.mu.Lock()
	for f.held >= f.window && f.waiters == 0 {
		f.mu.Unlock()
		select {
		case <-f.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
		f.mu.Lock()
	}
	k := b.Cid.KeyString()
	if _, dup := f.blocks[k]; !dup {
		f.blocks[k] = b.Data
		f.held += len(b.Data)
	}
	if b.Cid.Type() == node.CodecDagPB {
		f.interior[k] = b.Data
	}
	close(f.arrived)
	f.arrived = make(chan struct{})
	f.mu.Unlock()
	return nil
}

// take removes and returns a delivered block.
func (f *fetch) take(k string) ([]byte, bool) {
	f.mu.Lock()
	d, ok := f.blocks[k]
	if ok {
		delete(f.blocks, k)
		f.held -= len(d)
		f.taken.add(k, d)
	}
	f.mu.Unlock()
	if ok {
		f.signal()
	}
	return d, ok
}

// wait returns block k once delivered. Errors wrap ErrSource when the
// fetch failed or completed without k (then as *doneWithout), or are ctx's.
func (f *fetch) wait(ctx context.Context, k string) ([]byte, error) {
	for {
		if d, ok := f.take(k); ok {
			return d, nil
		}
		f.mu.Lock()
		if _, ok := f.blocks[k]; ok { // delivered meanwhile
			f.mu.Unlock()
			continue
		}
		if f.finished {
			err := f.err
			f.mu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrSource, f.kind, err)
			}
			c, _ := cid.Cast([]byte(k))
			return nil, &doneWithout{c: c.String()}
		}
		ch := f.arrived
		f.waiters++
		f.mu.Unlock()
		f.signal()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		f.mu.Lock()
		f.waiters--
		f.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// stop cancels the fetch and waits for its goroutine.
func (f *fetch) stop() {
	f.cancel()
	<-f.done
}
