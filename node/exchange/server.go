package exchange

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/hearthcdn/hearth/internal/logx"
	"github.com/hearthcdn/hearth/node"
)

// ServerConfig configures a Server. Zero values take the defaults named.
type ServerConfig struct {
	// Store is where blocks are served from. Required.
	Store node.Getter
	// MaxPeers caps concurrent connections. When all are taken, a new
	// peer takes the place of the connection idle longest (no request for
	// IdleEvict or more: an open tab that fetched nothing since); with
	// none idle, offers are refused. Default 64.
	MaxPeers int
	// IdleEvict is how long a connection must have had no request in
	// progress before a new peer may take its place. Default 15 s.
	IdleEvict time.Duration
	// MaxRequestsPerPeer caps one connection's concurrent requests; more
	// are answered busy. It is announced to the peer. Default 32.
	MaxRequestsPerPeer int
	// RequestRate and RequestBurst shape how fast one connection may open
	// requests (a token bucket, requests/s); beyond it, busy. The
	// concurrency limit is the main guard; this one bounds the work a peer
	// causes with tiny requests. Defaults 20000/s and 2000.
	RequestRate  float64
	RequestBurst int
	// FloodLimit is how many busy answers a connection may earn in a burst
	// (refilled at FloodLimit per minute) before it is closed and its peer
	// refused for Penalty. A requester that heeds SETTINGS is never busy
	// but for the rate limit. Default 1024; Penalty 1 min.
	FloodLimit int
	Penalty    time.Duration
	// UploadRate caps the bytes/s of block data sent to all peers together
	// (a token bucket); 0 means unlimited.
	UploadRate int64
	// IdleTimeout ends a request whose requester grants no credit, or a
	// message the connection cannot send, for that long, so a peer that
	// stops reading cannot hold a slot forever. Default 30 s.
	IdleTimeout time.Duration
	// Logger receives debug and warning logs (a *slog.Logger natively);
	// nil means slog.Default() (logx.Default() on js).
	Logger *logx.Logger
	// Clock is the time source of IdleEvict and Penalty; nil means the
	// system clock. Tests set it.
	Clock Clock
}

func (c *ServerConfig) setDefaults() {
	if c.MaxPeers <= 0 {
		c.MaxPeers = 64
	}
	if c.IdleEvict <= 0 {
		c.IdleEvict = 15 * time.Second
	}
	if c.MaxRequestsPerPeer <= 0 {
		c.MaxRequestsPerPeer = 32
	}
	if c.RequestRate <= 0 {
		c.RequestRate = 20000
	}
	if c.RequestBurst <= 0 {
		c.RequestBurst = 2000
	}
	if c.FloodLimit <= 0 {
		c.FloodLimit = 1024
	}
	if c.Penalty <= 0 {
		c.Penalty = time.Minute
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = logx.Default()
	}
	c.Clock = orSystem(c.Clock)
}

// maxCredit bounds a request's credit, whatever a requester grants.
const maxCredit = 1 << 40

// maxTrackedPeers bounds the per-peer accounting kept for peers no longer
// connected.
const maxTrackedPeers = 4096

// Server answers exchange requests from a block store. It implements
// Handler, so a Transport hands it the connections it accepts; ServeConn
// serves any other Conn. Close ends every connection and waits for them.
type Server struct {
	cfg    ServerConfig
	log    *logx.Logger
	upload *rate.Limiter // nil: unlimited

	mu       sync.Mutex
	conns    map[*serverConn]struct{}
	pending  int                      // admitted, not yet serving
	evicting int                      // conns reserved or closed to make room, not yet unregistered
	reserved map[string][]*serverConn // by peer: conns to close when its admission opens
	evicted  atomic.Int64             // conns ever closed to make room
	peers    map[string]*peerAccount
	banned   map[string]time.Time
	closed   bool
	wg       sync.WaitGroup

	// sendHook, if set, replaces each block just before it is sent (tests
	// make a corrupt seeder with it).
	sendHook func(peer string, b node.Block) node.Block
}

var _ Handler = (*Server)(nil)

// peerAccount is what the server counts for one peer.
type peerAccount struct {
	bytes    atomic.Int64
	blocks   atomic.Int64
	requests atomic.Int64
	busy     atomic.Int64
	conns    int // guarded by Server.mu
	lastSeen time.Time
}

// PeerStats is the accounting of one peer, as Server.Stats reports it.
type PeerStats struct {
	Peer        string
	BytesServed int64 // block bytes sent
	Blocks      int64 // blocks sent
	Requests    int64 // requests served (any outcome but busy)
	Busy        int64 // requests answered busy
	Connected   bool
}

// NewServer returns a Server for cfg.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("exchange server: no store: %w", ErrBadRequest)
	}
	cfg.setDefaults()
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		conns:    make(map[*serverConn]struct{}),
		reserved: make(map[string][]*serverConn),
		peers:    make(map[string]*peerAccount),
		banned:   make(map[string]time.Time),
	}
	if cfg.UploadRate > 0 {
		burst := int(max(cfg.UploadRate/20, MaxMessage))
		s.upload = rate.NewLimiter(rate.Limit(cfg.UploadRate), burst)
	}
	return s, nil
}

// Admit reports whether a new connection from peer would be served: the
// server must not be full, closed, or punishing peer. A Transport calls it
// before it spends anything on an offer; the slot it takes is released when
// ServeConn returns, or by Release if the connection never opens.
func (s *Server) Admit(peer string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if until, ok := s.banned[peer]; ok {
		if s.cfg.Clock.Now().Before(until) {
			return fmt.Errorf("peer %s is penalized: %w", peer, ErrRefused)
		}
		delete(s.banned, peer)
	}
	victim, ok := s.roomLocked(s.pending)
	if !ok {
		return fmt.Errorf("%d peers, none idle: %w", s.cfg.MaxPeers, ErrRefused)
	}
	if victim != nil {
		// Closed only once the new connection opens (register); Release
		// gives it back.
		s.reserved[peer] = append(s.reserved[peer], victim)
	}
	s.pending++
	return nil
}

// roomLocked reports whether one more connection fits beside pending
// admitted ones. If all are taken, it reserves the connection idle longest
// (evicted, counted in evicting) and returns it: the caller closes it
// (evict) or gives it back (unreserveLocked).
func (s *Server) roomLocked(pending int) (victim *serverConn, ok bool) {
	if len(s.conns)-s.evicting+pending < s.cfg.MaxPeers {
		return nil, true
	}
	now := s.cfg.Clock.Now()
	var since time.Time
	for sc := range s.conns {
		if sc.evicted {
			continue
		}
		sc.mu.Lock()
		idle := len(sc.reqs) == 0 && now.Sub(sc.active) >= s.cfg.IdleEvict
		active := sc.active
		sc.mu.Unlock()
		if idle && (victim == nil || active.Before(since)) {
			victim, since = sc, active
		}
	}
	if victim == nil {
		return nil, false
	}
	victim.evicted = true
	s.evicting++
	return victim, true
}

// evict closes a connection roomLocked reserved.
func (s *Server) evict(sc *serverConn) {
	s.evicted.Add(1)
	s.log.Debug("exchange: closing an idle connection to make room", "peer", sc.peer)
	go sc.shutdown() // owned by the server: ServeConn returns once it is closed
}

// takeReservedLocked removes and returns a connection reserved for peer's
// admission, or nil.
func (s *Server) takeReservedLocked(peer string) *serverConn {
	vs := s.reserved[peer]
	if len(vs) == 0 {
		return nil
	}
	v := vs[len(vs)-1]
	if len(vs) == 1 {
		delete(s.reserved, peer)
	} else {
		s.reserved[peer] = vs[:len(vs)-1]
	}
	return v
}

// penalize refuses peer's connections for the penalty time.
func (s *Server) penalize(peer string) {
	s.mu.Lock()
	if len(s.banned) >= maxTrackedPeers {
		now := s.cfg.Clock.Now()
		for p, until := range s.banned {
			if now.After(until) {
				delete(s.banned, p)
			}
		}
	}
	if len(s.banned) < maxTrackedPeers {
		s.banned[peer] = s.cfg.Clock.Now().Add(s.cfg.Penalty)
	}
	s.mu.Unlock()
}

// Release gives back a slot Admit took for a connection that never opened.
func (s *Server) Release(peer string) {
	s.mu.Lock()
	if s.pending > 0 {
		s.pending--
	}
	if v := s.takeReservedLocked(peer); v != nil && v.evicted {
		v.evicted = false // not needed after all
		s.evicting--
	}
	s.mu.Unlock()
}

// ServeConn serves requests from peer on c until c fails, ctx is done or
// the server closes; it closes c. A slot taken by Admit is used; without
// one, ServeConn admits the connection itself.
func (s *Server) ServeConn(ctx context.Context, peer string, c Conn) error {
	sc, err := s.register(peer, c)
	if err != nil {
		_ = c.Close()
		return err
	}
	defer s.unregister(sc)
	return sc.serve(ctx)
}

// register adds a connection, consuming an Admit slot if one is pending.
func (s *Server) register(peer string, c Conn) (*serverConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.pending > 0 {
		s.pending--
		if v := s.takeReservedLocked(peer); v != nil {
			s.evict(v)
		}
	} else {
		v, ok := s.roomLocked(0)
		if !ok {
			return nil, fmt.Errorf("%d peers, none idle: %w", s.cfg.MaxPeers, ErrRefused)
		}
		if v != nil {
			s.evict(v)
		}
	}
	acct := s.peers[peer]
	if acct == nil {
		s.evictLocked()
		acct = &peerAccount{}
		s.peers[peer] = acct
	}
	acct.conns++
	acct.lastSeen = s.cfg.Clock.Now()
	sc := &serverConn{
		s:       s,
		peer:    peer,
		acct:    acct,
		c:       newBatchConn(c),
		reqs:    make(map[uint64]*serverReq),
		active:  s.cfg.Clock.Now(),
		limiter: rate.NewLimiter(rate.Limit(s.cfg.RequestRate), s.cfg.RequestBurst),
		strikes: rate.NewLimiter(rate.Limit(float64(s.cfg.FloodLimit)/60), s.cfg.FloodLimit),
	}
	s.conns[sc] = struct{}{}
	s.wg.Add(1)
	return sc, nil
}

func (s *Server) unregister(sc *serverConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	if sc.evicted {
		s.evicting--
		for p, vs := range s.reserved { // gone before its newcomer arrived
			if i := slices.Index(vs, sc); i >= 0 {
				s.reserved[p] = slices.Delete(vs, i, i+1)
			}
		}
	}
	sc.acct.conns--
	sc.acct.lastSeen = s.cfg.Clock.Now()
	s.mu.Unlock()
	s.wg.Done()
}

// evictLocked forgets the longest-idle disconnected peers once the table is
// full.
func (s *Server) evictLocked() {
	if len(s.peers) < maxTrackedPeers {
		return
	}
	var idle []string
	for p, a := range s.peers {
		if a.conns == 0 {
			idle = append(idle, p)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return s.peers[idle[i]].lastSeen.Before(s.peers[idle[j]].lastSeen) })
	for _, p := range idle[:min(len(idle), maxTrackedPeers/8+1)] {
		delete(s.peers, p)
	}
}

// Evicted returns how many idle connections were closed to make room for
// new peers (see MaxPeers).
func (s *Server) Evicted() int64 { return s.evicted.Load() }

// Stats returns the accounting of every tracked peer, sorted by peer ID.
func (s *Server) Stats() []PeerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerStats, 0, len(s.peers))
	for p, a := range s.peers {
		out = append(out, PeerStats{
			Peer:        p,
			BytesServed: a.bytes.Load(),
			Blocks:      a.blocks.Load(),
			Requests:    a.requests.Load(),
			Busy:        a.busy.Load(),
			Connected:   a.conns > 0,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer < out[j].Peer })
	return out
}

// Close closes every connection and waits for their handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := make([]*serverConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	s.mu.Unlock()
	for _, sc := range conns {
		sc.shutdown()
	}
	s.wg.Wait()
	return nil
}

// serverConn serves one connection.
type serverConn struct {
	s       *Server
	peer    string
	acct    *peerAccount
	c       *batchConn
	limiter *rate.Limiter // requests
	strikes *rate.Limiter // busy answers

	mu      sync.Mutex
	reqs    map[uint64]*serverReq
	active  time.Time // the last request's start or end
	evicted bool      // reserved or closed to make room for another peer; guarded by Server.mu
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// serverReq is one request being served.
type serverReq struct {
	id     uint64
	cancel context.CancelFunc

	mu     sync.Mutex
	credit int64
	notify chan struct{}
}

func (sc *serverConn) shutdown() {
	sc.mu.Lock()
	cancel := sc.cancel
	sc.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	_ = sc.c.Close()
}

func (sc *serverConn) serve(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	sc.mu.Lock()
	sc.cancel = cancel
	sc.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { _ = sc.c.Close() })
	defer func() {
		stop()
		cancel()
		_ = sc.c.Close()
		sc.wg.Wait()
	}()
	settings := appendMessage(nil, &message{Type: msgSettings, Version: Version, MaxRequests: uint64(sc.s.cfg.MaxRequestsPerPeer), Features: localFeatures})
	if err := sc.c.WriteMessage(ctx, settings); err != nil {
		return fmt.Errorf("sending settings to %s: %w", sc.peer, err)
	}
	for {
		b, err := sc.c.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading from %s: %w: %w", sc.peer, ErrClosed, err)
		}
		err = eachMessage(b, func(m *message) error { return sc.dispatch(ctx, m) })
		if err != nil {
			sc.s.log.Debug("exchange: closing connection", "peer", sc.peer, "err", err)
			return err
		}
	}
}

func (sc *serverConn) dispatch(ctx context.Context, m *message) error {
	switch m.Type {
	case msgSettings:
		if m.Version != Version {
			return fmt.Errorf("peer speaks version %d: %w", m.Version, ErrProtocol)
		}
		if m.Features&featureBatch != 0 {
			sc.c.enable()
		}
		return nil
	case msgRequest:
		return sc.start(ctx, m)
	case msgCredit:
		sc.mu.Lock()
		r := sc.reqs[m.ID]
		sc.mu.Unlock()
		if r != nil {
			r.mu.Lock()
			r.credit = min(r.credit+int64(min(m.Credit, maxCredit)), maxCredit)
			r.mu.Unlock()
			select {
			case r.notify <- struct{}{}:
			default:
			}
		}
		return nil
	case msgCancel:
		sc.mu.Lock()
		r := sc.reqs[m.ID]
		sc.mu.Unlock()
		if r != nil {
			r.cancel()
		}
		return nil
	}
	return fmt.Errorf("%s from a requester: %w", m.Type, ErrProtocol)
}

// start admits a request and serves it on its own goroutine, or answers it
// busy.
func (sc *serverConn) start(ctx context.Context, m *message) error {
	sc.mu.Lock()
	if _, dup := sc.reqs[m.ID]; dup {
		sc.mu.Unlock()
		return fmt.Errorf("request id %d reused: %w", m.ID, ErrProtocol)
	}
	if len(sc.reqs) >= sc.s.cfg.MaxRequestsPerPeer || !sc.limiter.Allow() {
		flood := !sc.strikes.Allow()
		sc.mu.Unlock()
		sc.acct.busy.Add(1)
		if flood {
			sc.s.penalize(sc.peer)
			sc.s.log.Warn("exchange: peer floods requests; disconnecting", "peer", sc.peer)
			return fmt.Errorf("peer %s flooding: %w", sc.peer, ErrRefused)
		}
		return sc.end(ctx, m.ID, ErrBusy)
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &serverReq{id: m.ID, cancel: cancel, credit: int64(min(m.Window, maxCredit)), notify: make(chan struct{}, 1)}
	sc.reqs[m.ID] = r
	sc.active = sc.s.cfg.Clock.Now()
	sc.wg.Add(1)
	sc.mu.Unlock()
	sc.acct.requests.Add(1)
	req := m.Req
	go func() { // owned by sc: serve waits on sc.wg
		defer sc.wg.Done()
		err := sc.handle(rctx, r, &req)
		cancel()
		sc.mu.Lock()
		delete(sc.reqs, r.id)
		sc.active = sc.s.cfg.Clock.Now()
		sc.mu.Unlock()
		if ctx.Err() != nil {
			return // the connection is going away
		}
		if err := sc.end(ctx, r.id, err); err != nil {
			sc.s.log.Debug("exchange: END not sent", "peer", sc.peer, "err", err)
		}
	}()
	return nil
}

// end sends a request's END with the code err maps to.
func (sc *serverConn) end(ctx context.Context, id uint64, err error) error {
	c := errCode(err)
	text := ""
	if c != codeOK && c != codeCanceled && c != codeBusy {
		text = err.Error()
		if len(text) > maxEndText {
			text = text[:maxEndText]
		}
		for len(text) > 0 && !utf8.ValidString(text) {
			text = text[:len(text)-1]
		}
	}
	if c == codeInternal {
		sc.s.log.Warn("exchange: request failed", "peer", sc.peer, "err", err)
	}
	b := appendMessage(make([]byte, 0, 32+len(text)), &message{Type: msgEnd, ID: id, Code: c, Text: text})
	return sc.write(ctx, b)
}

// handle serves one request.
func (sc *serverConn) handle(ctx context.Context, r *serverReq, req *wireRequest) error {
	if req.DAG != nil {
		_, err := node.Traverse(ctx, sc.s.cfg.Store, *req.DAG, func(b node.Block) error {
			return sc.sendBlock(ctx, r, b)
		})
		return err
	}
	for _, c := range req.Blocks {
		data, err := sc.s.cfg.Store.Get(ctx, c)
		if err == nil {
			err = node.Verify(c, data)
			if err != nil {
				sc.s.log.Warn("exchange: corrupt block in store", "cid", c.String(), "err", err)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b := appendMessage(make([]byte, 0, 64), &message{Type: msgMissing, ID: r.id, Cid: c})
			if err := sc.write(ctx, b); err != nil {
				return err
			}
			continue
		}
		if err := sc.sendBlock(ctx, r, node.Block{Cid: c, Data: data}); err != nil {
			return err
		}
	}
	return nil
}

// bufPool holds message buffers of MaxMessage bytes.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, MaxMessage); return &b }}

// sendBlock sends b in fragments, each within the request's credit and the
// upload rate.
func (sc *serverConn) sendBlock(ctx context.Context, r *serverReq, b node.Block) error {
	if h := sc.s.sendHook; h != nil {
		b = h(sc.peer, b)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	data := b.Data
	for first := true; first || len(data) > 0; first = false {
		n, err := r.take(ctx, min(len(data), maxFragment), sc.s.cfg.IdleTimeout)
		if err != nil {
			return err
		}
		if sc.s.upload != nil && n > 0 {
			if err := sc.s.upload.WaitN(ctx, n); err != nil {
				return err
			}
		}
		buf := (*bp)[:0]
		if first {
			buf = appendBlockHeader(buf, r.id, b.Cid, len(b.Data))
		} else {
			buf = appendMoreHeader(buf, r.id)
		}
		buf = append(buf, data[:n]...)
		if err := sc.write(ctx, buf); err != nil {
			return err
		}
		data = data[n:]
		sc.acct.bytes.Add(int64(n))
	}
	sc.acct.blocks.Add(1)
	return nil
}

// write sends one message, giving up after the idle timeout.
func (sc *serverConn) write(ctx context.Context, b []byte) error {
	wctx, cancel := context.WithTimeoutCause(ctx, sc.s.cfg.IdleTimeout, ErrStalled)
	defer cancel()
	if err := sc.c.WriteMessage(wctx, b); err != nil {
		if ctx.Err() == nil && errors.Is(context.Cause(wctx), ErrStalled) {
			return fmt.Errorf("peer %s reads nothing: %w", sc.peer, ErrStalled)
		}
		return err
	}
	return nil
}

// take waits until the request has credit and takes up to want bytes of
// it; it gives up after idle without any.
func (r *serverReq) take(ctx context.Context, want int, idle time.Duration) (int, error) {
	if want == 0 {
		return 0, nil
	}
	var timeout <-chan time.Time
	for {
		r.mu.Lock()
		if r.credit > 0 {
			n := int(min(int64(want), r.credit))
			r.credit -= int64(n)
			r.mu.Unlock()
			return n, nil
		}
		r.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(idle)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-timeout:
			return 0, fmt.Errorf("no credit for %v: %w", idle, ErrStalled)
		}
	}
}

// Handler takes the connections a Transport accepts. *Server is one.
type Handler interface {
	// Admit is asked before an offer from peer is answered; an error
	// (wrapping ErrRefused) refuses it. An admitted connection that never
	// opens is given back with Release.
	Admit(peer string) error
	Release(peer string)
	// ServeConn serves an open connection until it ends.
	ServeConn(ctx context.Context, peer string, c Conn) error
}
