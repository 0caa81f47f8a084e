package exchange

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/internal/logx"
	"github.com/hearthcdn/hearth/node"
)

// FetcherConfig configures a Fetcher. Zero values take the defaults named.
type FetcherConfig struct {
	// Site is what Finder is asked for peers of.
	Site string
	// Store receives every verified block. Required.
	Store node.Blockstore
	// Dialer connects to peers (a *Transport). Nil: only the fallback is used.
	Dialer Dialer
	// Finder finds peers (the relay). Nil: only peers given to AddPeers.
	Finder Finder
	// Fallback serves requests no peer answers (the origin's gateway).
	Fallback Fallback
	// FallbackAfter is how long a request may wait for a peer's first block
	// before the fallback is asked too. Default 2 s.
	FallbackAfter time.Duration
	// MaxConns caps open (and opening) connections. Default 8.
	MaxConns int
	// MaxRequestsPerConn caps requests in flight on one connection (also
	// capped by the server's SETTINGS). Default 32.
	MaxRequestsPerConn int
	// MaxRangesPerConn caps byte-range requests in flight on one
	// connection, so that large files are spread over peers by pull: a
	// peer gets the next range when it finishes one. Default 3.
	MaxRangesPerConn int
	// Window is each request's flow-control window (credit), in bytes.
	// Default 2 MiB.
	Window int
	// FirstBytes is how much of a file the first request asks for; the
	// rest is split into RangeSize requests spread over peers. Defaults
	// 1 MiB and 8 MiB.
	FirstBytes int64
	RangeSize  int64
	// StallTimeout fails a request on which the peer sent nothing for that
	// long. Default 5 s.
	StallTimeout time.Duration
	// HedgeAfter is the least age of a request before it is duplicated on
	// another peer once nothing else is left to start. Default 150 ms (or
	// 3× the mean request time, if longer).
	HedgeAfter time.Duration
	// DialTimeout bounds one connection attempt. Default 10 s.
	DialTimeout time.Duration
	// BanTime is how long a peer that sent a bad block is shunned.
	// Default 30 min.
	BanTime time.Duration
	// BatchBytes is how many bytes of blocks go to the store per write.
	// Default 4 MiB.
	BatchBytes int
	// OnBan, if set, is told about each peer banned and why (to report it
	// to the relay). It must not block.
	OnBan func(peer string, err error)
	// Logger receives debug and warning logs (a *slog.Logger natively);
	// nil means slog.Default() (logx.Default() on js).
	Logger *logx.Logger
	// Clock is the time source of every deadline above; nil means the
	// system clock. Tests set it.
	Clock Clock
}

func (c *FetcherConfig) setDefaults() {
	if c.FallbackAfter <= 0 {
		c.FallbackAfter = 2 * time.Second
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 8
	}
	if c.MaxRequestsPerConn <= 0 {
		c.MaxRequestsPerConn = 32
	}
	if c.MaxRangesPerConn <= 0 {
		c.MaxRangesPerConn = 3
	}
	if c.Window <= 0 {
		c.Window = 2 << 20
	}
	if c.FirstBytes <= 0 {
		c.FirstBytes = 1 << 20
	}
	if c.RangeSize <= 0 {
		c.RangeSize = 8 << 20
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 5 * time.Second
	}
	if c.HedgeAfter <= 0 {
		c.HedgeAfter = 150 * time.Millisecond
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.BanTime <= 0 {
		c.BanTime = 30 * time.Minute
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 4 << 20
	}
	if c.Logger == nil {
		c.Logger = logx.Default()
	}
	c.Clock = orSystem(c.Clock)
}

// maxKnownPeers bounds the peer table.
const maxKnownPeers = 256

// maxAttempts bounds how many peers one request is tried on before the
// fallback (or failure).
const maxAttempts = 8

// Fetcher fetches content from peers, verifying every block, and stores it.
// It finds peers through Finder, connects lazily through Dialer and reuses
// connections (at most MaxConns), spreads a request's blocks over peers,
// moves work away from slow peers, hedges the last requests, bans peers
// that send bad or unexpected blocks, and falls back to Fallback when no
// peer answers in time. It is safe for concurrent use.
type Fetcher struct {
	cfg FetcherConfig
	log *logx.Logger
	ctx context.Context
	end context.CancelFunc

	mu       sync.Mutex
	peers    map[string]*peer
	changed  chan struct{} // closed and replaced on every change of peers
	finding  bool
	findSeq  int // completed finds
	lastFind time.Time
	closed   bool
	wg       sync.WaitGroup

	dirs dirCache
}

// NewFetcher returns a Fetcher for cfg.
func NewFetcher(cfg FetcherConfig) (*Fetcher, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("exchange fetcher: no store: %w", ErrBadRequest)
	}
	cfg.setDefaults()
	f := &Fetcher{
		cfg:     cfg,
		log:     cfg.Logger,
		peers:   make(map[string]*peer),
		changed: make(chan struct{}),
	}
	f.ctx, f.end = context.WithCancel(context.Background())
	return f, nil
}

// Fetch fetches the blocks req names (IPFS Trustless Gateway semantics:
// the blocks proving Path from Root, and what Scope and Bytes select at its
// end) into the store, every one verified, and returns what node.Traverse
// returns for req. Blocks already in the store are not fetched again.
// Errors wrap node.ErrNotFound when no peer (nor the fallback) has a block,
// ErrNoPeers when nothing could be asked, or the content errors of
// node.Traverse (node.ErrNoSuchPath, ...), which verified blocks prove.
func (f *Fetcher) Fetch(ctx context.Context, req node.Request) (*node.Result, error) {
	if req.Scope == "" {
		req.Scope = node.ScopeAll
	}
	j := f.newJob(ctx)
	defer j.cancel(nil)
	head := j.headTask(req)
	j.add(head)
	if err := j.wait(); err != nil {
		return nil, err
	}
	return head.final, nil
}

// FetchBlocks fetches blocks by CID into the store, spread over peers, each
// verified against its CID. Blocks already stored are skipped.
func (f *Fetcher) FetchBlocks(ctx context.Context, cids []cid.Cid) error {
	j := f.newJob(ctx)
	defer j.cancel(nil)
	var want []cid.Cid
	seen := make(map[string]bool, len(cids))
	for _, c := range cids {
		if seen[c.KeyString()] {
			continue
		}
		seen[c.KeyString()] = true
		if ok, err := f.cfg.Store.Has(ctx, c); err == nil && ok {
			continue
		}
		want = append(want, c)
	}
	for len(want) > 0 {
		n := min(len(want), blocksPerRequest)
		j.add(&task{kind: kindBlocks, blocks: want[:n:n], hedge: make(chan struct{}, 1)})
		want = want[n:]
	}
	return j.wait()
}

// blocksPerRequest is how many CIDs one BLOCKS request names.
const blocksPerRequest = 64

// Get returns block c from the store, fetching it first if absent; so a
// Fetcher is a node.Getter that node.Resolve or node.WriteFile can read
// through lazily.
func (f *Fetcher) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	d, err := f.cfg.Store.Get(ctx, c)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, node.ErrNotFound) {
		return nil, err
	}
	if err := f.FetchBlocks(ctx, []cid.Cid{c}); err != nil {
		return nil, err
	}
	return f.cfg.Store.Get(ctx, c)
}

var _ node.Getter = (*Fetcher)(nil)

// AddPeers adds peers to try, besides those Finder returns.
func (f *Fetcher) AddPeers(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.knowLocked(id)
	}
	f.broadcastLocked()
}

// Warm starts connecting to known peers, unbanned and not backed off,
// until n are connected or connecting (at most MaxConns), so that the
// first request does not wait for a dial (for WebRTC, the offer/answer and
// ICE round trips). It returns at once; Peers shows the result.
func (f *Fetcher) Warm(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.cfg.Dialer == nil {
		return
	}
	n = min(n, f.cfg.MaxConns)
	now := f.cfg.Clock.Now()
	conns := 0
	for _, p := range f.peers {
		if p.dialing || p.connected() {
			conns++
		}
	}
	for _, p := range f.peers {
		if conns >= n {
			return
		}
		if now.Before(p.bannedUntil) || p.dialing || p.connected() || now.Before(p.until) {
			continue
		}
		f.dialLocked(p)
		conns++
	}
}

// FetcherPeer describes one peer a Fetcher knows.
type FetcherPeer struct {
	ID        string
	Connected bool
	Banned    bool
	// Rate is the recent transfer rate of large requests, bytes/s.
	Rate float64
	// BytesIn is the block data received on the current connection.
	BytesIn int64
}

// Peers describes the peers the Fetcher knows, sorted by ID.
func (f *Fetcher) Peers() []FetcherPeer {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.cfg.Clock.Now()
	out := make([]FetcherPeer, 0, len(f.peers))
	for _, p := range f.peers {
		fp := FetcherPeer{ID: p.id, Banned: now.Before(p.bannedUntil), Rate: p.rate}
		if p.cc != nil && !p.cc.isClosed() {
			fp.Connected = true
			fp.BytesIn = p.cc.bytesIn.Load()
		}
		out = append(out, fp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Close closes every connection and waits for the Fetcher's goroutines.
// Fetches in progress fail with ErrClosed.
func (f *Fetcher) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	var ccs []*clientConn
	for _, p := range f.peers {
		if p.cc != nil {
			ccs = append(ccs, p.cc)
		}
	}
	f.broadcastLocked()
	f.mu.Unlock()
	f.end()
	for _, cc := range ccs {
		cc.close(ErrClosed)
	}
	f.wg.Wait()
	return nil
}

// spawn runs fn on a goroutine Close waits for, unless f is closed.
func (f *Fetcher) spawn(fn func()) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.spawnLocked(fn)
}

func (f *Fetcher) spawnLocked(fn func()) bool {
	if f.closed {
		return false
	}
	f.wg.Add(1)
	go func() { // owned by f: Close waits on f.wg
		defer f.wg.Done()
		fn()
	}()
	return true
}
