package relayserver

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hearthcdn/hearth/relay"
)

// shutdownGrace bounds how long Close lets connections flush their last
// message before it cuts them.
const shutdownGrace = time.Second

// Server is the relay. It does not listen: serve Handler (or the Server
// itself, an http.Handler for the WebSocket endpoint) from an http.Server,
// and run TURN (STUN/TURN on UDP) beside it if wanted. Close ends every
// connection and waits for every goroutine the Server started.
type Server struct {
	cfg     Config
	log     *slog.Logger
	prom    *prometheus.Registry
	metrics *metrics
	reg     *registry
	records *recordStore
	start   time.Time
	limits  *relay.Limits
	stun    []relay.ICEServer

	mu     sync.Mutex // guards closed, conns, perIP
	closed bool
	conns  map[*conn]struct{}
	perIP  map[netip.Prefix]int // connections per IPKey

	outbox *outbox // nil when writes are not coalesced
	loops  []*loop // nil in blocking mode
	next   atomic.Uint32

	done chan struct{}  // closed by Close once connections are gone
	wg   sync.WaitGroup // one count per connection until its cleanup, plus flusher goroutines
	bgWG sync.WaitGroup // event loops, the sweeper and the outbox timer
}

// New returns a running Server (its idle sweeper started). Errors wrap
// relay.ErrBadConfig or come from registering metrics.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		prom:    cfg.Registry,
		reg:     newRegistry(),
		records: newRecordStore(cfg.MaxRecords),
		start:   time.Now(),
		conns:   make(map[*conn]struct{}),
		perIP:   make(map[netip.Prefix]int),
		done:    make(chan struct{}),
		limits: &relay.Limits{
			MaxMessage:       cfg.MaxMessageSize,
			Rate:             cfg.MessageRate,
			Burst:            cfg.MessageBurst,
			MaxSites:         cfg.MaxSites,
			MaxSubscriptions: cfg.MaxSubscriptions,
			IdleTimeout:      int(cfg.IdleTimeout / time.Second),
		},
	}
	if len(cfg.STUNURLs) > 0 {
		s.stun = []relay.ICEServer{{URLs: cfg.STUNURLs}}
	}
	if s.prom == nil {
		var err error
		if s.prom, err = newPromRegistry(); err != nil {
			return nil, err
		}
	}
	m, err := newMetrics(s.prom, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if loopsSupported && cfg.Loops >= 0 {
		n := cfg.Loops
		if n == 0 {
			n = runtime.GOMAXPROCS(0)
		}
		for range n {
			l, err := newLoop(s)
			if err != nil {
				for _, l := range s.loops {
					l.shutdown()
				}
				s.bgWG.Wait()
				return nil, err
			}
			s.loops = append(s.loops, l)
			s.bgWG.Go(l.run)
		}
	}
	if cfg.Coalesce > 0 {
		s.outbox = newOutbox(cfg.Coalesce)
		s.bgWG.Go(func() { s.outbox.run(s.done) })
	}
	s.bgWG.Add(1)
	go s.sweep()
	return s, nil
}

// mono returns monotonic nanoseconds since the server started.
func (s *Server) mono() int64 { return int64(time.Since(s.start)) }

// Handler returns the relay's HTTP routes: the WebSocket endpoint at /ws,
// /healthz (200 "ok", 503 once closing) and /metrics (Prometheus).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ws", s)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			http.Error(w, "closing", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.prom, promhttp.HandlerOpts{}))
	return mux
}

// ServeHTTP upgrades r to a relay WebSocket connection. It answers 429 when
// r's IP (an IPv6 address: its /64, see IPKey) already holds
// Config.MaxConnsPerIP connections and 503 once the
// server is closing. It returns as soon as the connection is set up; the
// connection's goroutine belongs to the Server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := remoteIP(r, s.cfg.TrustProxy)
	if reason := s.admit(ip); reason != "" {
		s.metrics.refused.WithLabelValues(reason).Inc()
		if reason == reasonShutdown {
			http.Error(w, "relay shutting down", http.StatusServiceUnavailable)
		} else {
			http.Error(w, "too many connections from your address", http.StatusTooManyRequests)
		}
		return
	}
	h := &hijacker{ResponseWriter: w}
	ws, err := websocket.Accept(h, r, &websocket.AcceptOptions{
		InsecureSkipVerify: len(s.cfg.OriginPatterns) == 0,
		OriginPatterns:     s.cfg.OriginPatterns,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		s.release(ip)
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	if h.shell == nil { // Accept hijacked through something other than h
		_ = ws.CloseNow()
		s.release(ip)
		s.log.Error("websocket upgrade bypassed the relay's hijacker", "remote", r.RemoteAddr)
		return
	}
	// The relay frames the connection itself from here on (frame.go):
	// coder/websocket's Conn is dropped, its Close disarmed.
	h.shell.detached.Store(true)
	_ = ws.CloseNow()

	c := newConn(s, ip)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = h.conn.Close()
		s.release(ip)
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1) // released by forget, at the end of the connection's cleanup
	s.mu.Unlock()
	s.metrics.connections.Inc()
	if len(s.loops) > 0 {
		if fd, ok := detach(h.conn); ok {
			c.fd = fd
			c.loop = s.loops[int(s.next.Add(1))%len(s.loops)]
			c.loop.add(c, h.pending)
			return
		}
	}
	c.nc = h.conn
	go c.readBlocking(h.pending)
}

// admit counts a new connection from ip under its IPKey, or returns why it
// is refused.
func (s *Server) admit(ip netip.Addr) string {
	k := IPKey(ip)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return reasonShutdown
	}
	if s.perIP[k] >= s.cfg.MaxConnsPerIP {
		return reasonPerIP
	}
	s.perIP[k]++
	return ""
}

func (s *Server) release(ip netip.Addr) {
	k := IPKey(ip)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[k] <= 1 {
		delete(s.perIP, k)
	} else {
		s.perIP[k]--
	}
}

// forget removes a finished connection; the last step of its cleanup.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.release(c.ip)
	s.metrics.connections.Dec()
	s.wg.Done()
}

// remoteIP is the client's address: the connection's, or with trustProxy
// the last X-Forwarded-For entry when it parses.
func remoteIP(r *http.Request, trustProxy bool) netip.Addr {
	if trustProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				return a.Unmap()
			}
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// sweep closes connections that stay silent past IdleTimeout or do not
// finish hello within HelloTimeout, and pings those silent for half of
// IdleTimeout. One goroutine for all connections: no timer per connection.
func (s *Server) sweep() {
	defer s.bgWG.Done()
	interval := min(s.cfg.IdleTimeout/4, s.cfg.HelloTimeout/2)
	interval = max(interval, 50*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	var batch []*conn
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		now := s.mono()
		batch = batch[:0]
		s.mu.Lock()
		for c := range s.conns {
			batch = append(batch, c)
		}
		s.mu.Unlock()
		for _, c := range batch {
			c.checkTimers(now)
		}
		clear(batch)
	}
}

// Close stops accepting connections, tells every peer the relay is shutting
// down, closes every connection (after at most a second for the last
// messages to drain) and waits for all of the Server's goroutines. It does
// not close the http.Server or a TURN server. Close is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if !first {
		s.wg.Wait()
		s.bgWG.Wait()
		return nil
	}
	for _, c := range conns {
		c.closeWith(0, "", fmt.Errorf("closing: %w", relay.ErrShuttingDown), reasonShutdown, closeGoingAway)
	}
	drained := make(chan struct{})
	go func() { s.wg.Wait(); close(drained) }()
	t := time.NewTimer(shutdownGrace)
	select {
	case <-drained:
	case <-t.C:
		for _, c := range conns {
			c.kill(reasonShutdown)
		}
		<-drained
	}
	t.Stop()
	close(s.done) // stops the sweeper and the outbox timer
	for _, l := range s.loops {
		l.shutdown()
	}
	s.bgWG.Wait()
	return nil
}
