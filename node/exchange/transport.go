package exchange

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/transport/v4"
	"github.com/pion/webrtc/v4"

	"github.com/hearthcdn/hearth/internal/logx"
)

// TransportConfig configures a Transport. Zero values take the defaults
// named.
type TransportConfig struct {
	// Signaler carries offers, answers and candidates to other peers.
	// Required.
	Signaler Signaler
	// Handler takes accepted connections (a *Server). Nil: offers are
	// refused.
	Handler Handler
	// ICEServers are the STUN and TURN servers to gather candidates with.
	ICEServers []webrtc.ICEServer
	// ICESource, if set, is asked for more STUN and TURN servers before
	// each peer connection, such as the relay's ice answer (whose TURN
	// credentials expire): relaysig.ICESource. Its servers are used with
	// ICEServers; when it fails (within iceSourceTimeout), ICEServers alone.
	ICESource func(context.Context) ([]webrtc.ICEServer, error)
	// RelayOnly hides this peer's addresses from the peers it connects
	// with and from the signaller: every connection uses ICE transport
	// policy "relay" (TURN candidates only, so TURN must be among the ICE
	// servers), and the descriptions and candidates it sends carry no
	// host, server-reflexive or related address (relayonly.go). A member
	// who runs a seeder at home and wants no visitor to learn their
	// address sets it.
	RelayOnly bool
	// RelayOnlyServing does the same for accepted connections only (those
	// that Handler serves): a seeding browser tab hides its address from
	// the visitors it serves and still fetches over direct paths.
	RelayOnlyServing bool
	// Net is the network that ICE gathers interfaces of and opens its
	// sockets in (host, server-reflexive and TURN); nil is the host's. A
	// network namespace's (internal/netlab) puts a peer behind its NAT.
	// Native only.
	Net transport.Net
	// IncludeLoopback also gathers 127.0.0.1 candidates (for peers on the
	// same host, such as a browser test). Native only.
	IncludeLoopback bool
	// LoopbackOnly gathers nothing but 127.0.0.1 UDP candidates and
	// disables mDNS: for tests and benchmarks, so nothing leaves the host.
	// Native only.
	LoopbackOnly bool
	// UDPBuffer is the SO_RCVBUF and SO_SNDBUF of ICE sockets, in bytes
	// (the kernel caps it at net.core.rmem_max). Default 4 MiB. Native only.
	UDPBuffer int
	// SCTPReceiveBuffer is the SCTP receive window, in bytes. Default and
	// maximum 768 KiB: pion queues received packets in a 1 MB buffer ahead
	// of DTLS and drops what overflows it, so a larger window lets a fast
	// sender cause losses (README.md, "Tuning"). Native only.
	SCTPReceiveBuffer int
	// ConnectTimeout bounds an offer's way to an open channel. Default 15 s.
	ConnectTimeout time.Duration
	// Logger receives debug logs (a *slog.Logger natively); nil means
	// slog.Default() (logx.Default() on js).
	Logger *logx.Logger
}

// Buffered-amount thresholds of a data channel's send queue: a writer waits
// above sendHighWater until the queue drains to sendLowWater. See README.md,
// "Tuning".
const (
	sendHighWater = 1 << 20
	sendLowWater  = 512 << 10
)

// maxSCTPReceiveBuffer keeps the SCTP window below the 1,000,000-byte
// packet buffers of pion's ICE agent and DTLS mux, with room for headers.
const maxSCTPReceiveBuffer = 768 << 10

// Limits on signalling state kept for sessions not yet open.
const (
	maxSessionInbox = 256 // queued signalling messages per session
	maxEarly        = 64  // sessions whose candidates arrived before their offer
)

// Transport makes and accepts WebRTC connections: each is one peer
// connection with one negotiated, ordered, reliable data channel, set up by
// trickle ICE over the Signaler. It dials for a Fetcher (Dial) and answers
// offers for a Handler. Feed it every signalling message addressed to this
// node with HandleSignal. Close closes every connection it made or accepted
// and waits for their goroutines.
type Transport struct {
	cfg TransportConfig
	log *logx.Logger
	api *webrtc.API
	ctx context.Context
	end context.CancelFunc

	mu       sync.Mutex
	sessions map[sessionKey]*session
	early    map[sessionKey]*earlySignals // candidates that beat their offer
	conns    map[*rtcConn]struct{}
	closed   bool
	wg       sync.WaitGroup
	nets     []func() // native resources to release at Close
}

type sessionKey struct {
	peer, id string
	answerer bool // this side answers
}

var _ Dialer = (*Transport)(nil)

// NewTransport returns a Transport for cfg.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	if cfg.Signaler == nil {
		return nil, fmt.Errorf("exchange transport: no signaler: %w", ErrBadRequest)
	}
	if cfg.UDPBuffer <= 0 {
		cfg.UDPBuffer = 4 << 20
	}
	if cfg.SCTPReceiveBuffer <= 0 || cfg.SCTPReceiveBuffer > maxSCTPReceiveBuffer {
		cfg.SCTPReceiveBuffer = maxSCTPReceiveBuffer
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = logx.Default()
	}
	t := &Transport{
		cfg:      cfg,
		log:      cfg.Logger,
		sessions: make(map[sessionKey]*session),
		early:    make(map[sessionKey]*earlySignals),
		conns:    make(map[*rtcConn]struct{}),
	}
	api, err := newAPI(&cfg, t)
	if err != nil {
		return nil, err
	}
	t.api = api
	t.ctx, t.end = context.WithCancel(context.Background())
	return t, nil
}

// HandleSignal takes a signalling message from peer. It never blocks for
// long: offers start a session on a goroutine, and other messages are queued
// for their session's goroutine. Messages for unknown sessions are dropped.
func (t *Transport) HandleSignal(from string, m SignalMsg) {
	if m.Session == "" || len(m.Session) > 64 {
		t.log.Debug("exchange: signal without session", "peer", from)
		return
	}
	key := sessionKey{peer: from, id: m.Session, answerer: !m.FromAnswerer}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	if s := t.sessions[key]; s != nil {
		t.mu.Unlock()
		s.push(m)
		return
	}
	if m.Type != SignalOffer || m.FromAnswerer {
		if key.answerer && m.Type == SignalCandidate {
			t.keepEarlyLocked(key, m)
		}
		t.mu.Unlock()
		return
	}
	var early []SignalMsg
	if e := t.early[key]; e != nil {
		early = e.msgs
		delete(t.early, key)
	}
	h := t.cfg.Handler
	if h == nil {
		t.mu.Unlock()
		t.bye(from, m.Session, "not serving")
		return
	}
	if err := h.Admit(from); err != nil {
		t.mu.Unlock()
		t.log.Debug("exchange: offer refused", "peer", from, "err", err)
		t.bye(from, m.Session, err.Error())
		return
	}
	s := newSession(t, key)
	t.sessions[key] = s
	t.wg.Add(1)
	t.mu.Unlock()
	s.push(m)
	for _, c := range early {
		s.push(c)
	}
	go func() { // owned by t: Close waits on t.wg
		defer t.wg.Done()
		t.answer(s, h)
	}()
}

// earlySignals are candidates for a session whose offer has not come (yet:
// the peer's signaller may reorder; or ever: they are late ones for a
// session already open, and expire).
type earlySignals struct {
	at   time.Time
	msgs []SignalMsg
}

// earlyTTL is how long candidates wait for their offer.
const earlyTTL = 10 * time.Second

func (t *Transport) keepEarlyLocked(key sessionKey, m SignalMsg) {
	now := time.Now()
	e := t.early[key]
	if e == nil {
		if len(t.early) >= maxEarly {
			for k, v := range t.early {
				if now.Sub(v.at) > earlyTTL {
					delete(t.early, k)
				}
			}
			if len(t.early) >= maxEarly {
				return
			}
		}
		e = &earlySignals{at: now}
		t.early[key] = e
	}
	if len(e.msgs) < maxSessionInbox {
		e.msgs = append(e.msgs, m)
	}
}

// bye tells from that session is over, without waiting on the signaller.
func (t *Transport) bye(to, sessionID, reason string) {
	t.spawn(func() {
		ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
		defer cancel()
		m := SignalMsg{Session: sessionID, Type: SignalBye, FromAnswerer: true, Reason: reason}
		if err := t.cfg.Signaler.Send(ctx, to, m); err != nil {
			t.log.Debug("exchange: bye not sent", "peer", to, "err", err)
		}
	})
}

// Dial opens a connection to peer: it sends an offer at once and trickles
// candidates as they are gathered.
func (t *Transport) Dial(ctx context.Context, peer string) (Conn, error) {
	var idb [12]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, fmt.Errorf("session id: %w", err)
	}
	key := sessionKey{peer: peer, id: hex.EncodeToString(idb[:])}
	s := newSession(t, key)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	t.sessions[key] = s
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ConnectTimeout)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel) // Close ends dials too
	defer stop()
	c, err := s.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", peer, err)
	}
	return c, nil
}

// Close closes every connection and session and waits for them.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	conns := make([]*rtcConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	t.end()
	for _, c := range conns {
		_ = c.Close()
	}
	t.wg.Wait()
	for _, f := range t.nets {
		f()
	}
	return nil
}

// spawn runs f on a goroutine that Close waits for, unless t is closed.
func (t *Transport) spawn(f func()) bool {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return false
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() { // owned by t
		defer t.wg.Done()
		f()
	}()
	return true
}

func (t *Transport) removeSession(s *session) {
	t.mu.Lock()
	if t.sessions[s.key] == s {
		delete(t.sessions, s.key)
	}
	t.mu.Unlock()
}

func (t *Transport) track(c *rtcConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Transport) untrack(c *rtcConn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// answer runs an accepted session: answer the offer, wait for the channel,
// then serve it.
func (t *Transport) answer(s *session, h Handler) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.ConnectTimeout)
	c, err := s.accept(ctx)
	cancel()
	if err != nil {
		h.Release(s.key.peer)
		t.log.Debug("exchange: accepting failed", "peer", s.key.peer, "err", err)
		return
	}
	if err := h.ServeConn(t.ctx, s.key.peer, c); err != nil && !errors.Is(err, ErrClosed) {
		t.log.Debug("exchange: connection ended", "peer", s.key.peer, "err", err)
	}
	_ = c.Close()
}

// session is one connection attempt, driven by one goroutine (dial or
// accept) that owns its peer connection until the channel opens.
type session struct {
	t   *Transport
	key sessionKey

	mu     sync.Mutex
	inbox  []SignalMsg
	notify chan struct{}
}

func newSession(t *Transport, key sessionKey) *session {
	return &session{t: t, key: key, notify: make(chan struct{}, 1)}
}

// push queues an incoming message; it never blocks.
func (s *session) push(m SignalMsg) {
	s.mu.Lock()
	if len(s.inbox) < maxSessionInbox {
		s.inbox = append(s.inbox, m)
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *session) take() []SignalMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.inbox
	s.inbox = nil
	return in
}

// setup is the state of a session's peer connection while it opens.
type setup struct {
	s         *session
	pc        *webrtc.PeerConnection
	dc        *webrtc.DataChannel
	opened    chan struct{}
	raw       any   // the detached channel (native), set before opened closes
	rawErr    error // why detaching failed
	failed    chan struct{}
	cands     chan webrtc.ICECandidateInit
	remoteSet bool
	pending   []webrtc.ICECandidateInit
	relayOnly bool // TransportConfig.RelayOnly or RelayOnlyServing applies
	descSent  bool
	held      []webrtc.ICECandidateInit // local candidates gathered before the description was sent
}

// iceSourceTimeout bounds the wait on TransportConfig.ICESource.
const iceSourceTimeout = 3 * time.Second

// iceServers is ICEServers with those of ICESource added.
func (t *Transport) iceServers(ctx context.Context) []webrtc.ICEServer {
	servers := t.cfg.ICEServers
	if t.cfg.ICESource == nil {
		return servers
	}
	ctx, cancel := context.WithTimeout(ctx, iceSourceTimeout)
	defer cancel()
	more, err := t.cfg.ICESource(ctx)
	if err != nil {
		t.log.Debug("exchange: no ICE servers from the source", "err", err)
		return servers
	}
	return append(append([]webrtc.ICEServer(nil), servers...), more...)
}

// newSetup creates the peer connection and the negotiated data channel
// (id 0 on both sides: no in-band open handshake, one round trip saved).
func (s *session) newSetup(ctx context.Context) (*setup, error) {
	conf := webrtc.Configuration{ICEServers: s.t.iceServers(ctx)}
	relayOnly := s.t.cfg.RelayOnly || (s.t.cfg.RelayOnlyServing && s.key.answerer)
	if relayOnly {
		if !iceServersHaveTURN(conf.ICEServers) {
			return nil, ErrNoTURN
		}
		conf.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := s.t.api.NewPeerConnection(conf)
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	ordered, negotiated, id := true, true, uint16(0)
	dc, err := pc.CreateDataChannel(Protocol, &webrtc.DataChannelInit{Ordered: &ordered, Negotiated: &negotiated, ID: &id})
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("new data channel: %w", err)
	}
	st := &setup{
		s:         s,
		pc:        pc,
		dc:        dc,
		opened:    make(chan struct{}),
		failed:    make(chan struct{}),
		cands:     make(chan webrtc.ICECandidateInit, 64),
		relayOnly: relayOnly,
	}
	var openOnce, failOnce sync.Once
	dc.OnOpen(func() {
		openOnce.Do(func() {
			st.raw, st.rawErr = detach(dc) // pion wants it detached within OnOpen
			close(st.opened)
		})
	})
	pc.OnConnectionStateChange(func(cs webrtc.PeerConnectionState) {
		if cs == webrtc.PeerConnectionStateFailed || cs == webrtc.PeerConnectionStateClosed {
			failOnce.Do(func() { close(st.failed) })
		}
	})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		select { // never block pion's (or the browser's) callback
		case st.cands <- c.ToJSON():
		default:
			s.t.log.Debug("exchange: local candidate dropped", "peer", s.key.peer)
		}
	})
	return st, nil
}

func (st *setup) send(ctx context.Context, m SignalMsg) error {
	if st.relayOnly {
		var ok bool
		if m, ok = relayOnlySignal(m); !ok {
			return nil
		}
	}
	m.Session = st.s.key.id
	m.FromAnswerer = st.s.key.answerer
	return st.s.t.cfg.Signaler.Send(ctx, st.s.key.peer, m)
}

// sendCandidate trickles a local candidate, holding it back until the
// description has gone out.
func (st *setup) sendCandidate(ctx context.Context, c webrtc.ICECandidateInit) error {
	if !st.descSent {
		st.held = append(st.held, c)
		return nil
	}
	return st.send(ctx, SignalMsg{Type: SignalCandidate, Candidate: &c})
}

func (st *setup) sendDescription(ctx context.Context, typ SignalType, sdp string) error {
	if err := st.send(ctx, SignalMsg{Type: typ, SDP: sdp}); err != nil {
		return err
	}
	st.descSent = true
	for _, c := range st.held {
		if err := st.send(ctx, SignalMsg{Type: SignalCandidate, Candidate: &c}); err != nil {
			return err
		}
	}
	st.held = nil
	return nil
}

// handle applies one incoming signalling message.
func (st *setup) handle(ctx context.Context, m SignalMsg) error {
	switch m.Type {
	case SignalBye:
		return fmt.Errorf("peer said bye: %q: %w", m.Reason, ErrRefused)
	case SignalCandidate:
		if m.Candidate == nil {
			return nil
		}
		if !st.remoteSet {
			if len(st.pending) < maxSessionInbox {
				st.pending = append(st.pending, *m.Candidate)
			}
			return nil
		}
		if err := st.pc.AddICECandidate(*m.Candidate); err != nil {
			st.s.t.log.Debug("exchange: bad remote candidate", "peer", st.s.key.peer, "err", err)
		}
		return nil
	case SignalOffer, SignalAnswer:
		want := SignalAnswer
		if st.s.key.answerer {
			want = SignalOffer
		}
		if st.remoteSet && m.Type == want {
			return nil // a repeat: the relay or the peer sent it twice
		}
		if m.Type != want {
			return fmt.Errorf("%s out of place: %w", m.Type, ErrSignal)
		}
		sdpType := webrtc.SDPTypeAnswer
		if m.Type == SignalOffer {
			sdpType = webrtc.SDPTypeOffer
		}
		if err := st.pc.SetRemoteDescription(webrtc.SessionDescription{Type: sdpType, SDP: m.SDP}); err != nil {
			return fmt.Errorf("remote description: %v: %w", err, ErrSignal)
		}
		st.remoteSet = true
		for _, c := range st.pending {
			if err := st.pc.AddICECandidate(c); err != nil {
				st.s.t.log.Debug("exchange: bad remote candidate", "peer", st.s.key.peer, "err", err)
			}
		}
		st.pending = nil
		if m.Type == SignalOffer {
			ans, err := st.pc.CreateAnswer(nil)
			if err != nil {
				return fmt.Errorf("creating answer: %w", err)
			}
			if err := st.pc.SetLocalDescription(ans); err != nil {
				return fmt.Errorf("local description: %w", err)
			}
			return st.sendDescription(ctx, SignalAnswer, ans.SDP)
		}
		return nil
	}
	return fmt.Errorf("signal type %q: %w", m.Type, ErrSignal)
}

// run drives the setup until the channel opens, then wraps it as a Conn.
func (st *setup) run(ctx context.Context) (Conn, error) {
	for {
		select {
		case <-st.s.notify:
			for _, m := range st.s.take() {
				if err := st.handle(ctx, m); err != nil {
					return nil, err
				}
			}
		case c := <-st.cands:
			if err := st.sendCandidate(ctx, c); err != nil {
				return nil, fmt.Errorf("sending candidate: %w", err)
			}
		case <-st.opened:
			if st.rawErr != nil {
				return nil, fmt.Errorf("detaching data channel: %w", st.rawErr)
			}
			c, err := newRTCConn(st.s.key.peer, st.s.t, st.pc, st.dc, st.raw)
			if err != nil {
				return nil, err
			}
			// Candidates still queued are no longer needed; late ones are
			// dropped with the session.
			return c, nil
		case <-st.failed:
			return nil, fmt.Errorf("peer connection failed: %w", ErrClosed)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *session) dial(ctx context.Context) (Conn, error) {
	defer s.t.removeSession(s)
	st, err := s.newSetup(ctx)
	if err != nil {
		return nil, err
	}
	c, err := func() (Conn, error) {
		offer, err := st.pc.CreateOffer(nil)
		if err != nil {
			return nil, fmt.Errorf("creating offer: %w", err)
		}
		if err := st.pc.SetLocalDescription(offer); err != nil {
			return nil, fmt.Errorf("local description: %w", err)
		}
		if err := st.sendDescription(ctx, SignalOffer, offer.SDP); err != nil {
			return nil, fmt.Errorf("sending offer: %w", err)
		}
		return st.run(ctx)
	}()
	if err != nil {
		_ = st.pc.Close()
		if !errors.Is(err, ErrRefused) {
			st.byeBestEffort()
		}
		return nil, err
	}
	return c, nil
}

func (s *session) accept(ctx context.Context) (Conn, error) {
	defer s.t.removeSession(s)
	st, err := s.newSetup(ctx)
	if err != nil {
		// Tell the dialer at once rather than let it wait for its timeout.
		s.t.bye(s.key.peer, s.key.id, err.Error())
		return nil, err
	}
	c, err := st.run(ctx)
	if err != nil {
		_ = st.pc.Close()
		return nil, err
	}
	return c, nil
}

// byeBestEffort tells the peer a failed dial is over, so it frees the slot.
func (st *setup) byeBestEffort() {
	ctx, cancel := context.WithTimeout(st.s.t.ctx, time.Second)
	defer cancel()
	if err := st.send(ctx, SignalMsg{Type: SignalBye, Reason: "gave up"}); err != nil {
		st.s.t.log.Debug("exchange: bye not sent", "peer", st.s.key.peer, "err", err)
	}
}
