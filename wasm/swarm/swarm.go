// Package swarm joins a relay client and the WebRTC block exchange into one
// peer: it carries the exchange's offers, answers and candidates through
// the relay, finds peers of a site with the relay, fetches with an
// exchange.Fetcher and, when serving, answers offers with an
// exchange.Server and announces itself.
//
// The page agent (wasm/agent, GOOS=js) is one; the browser tests' seeders
// (native) are others. It builds for both.
package swarm

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	cid "github.com/ipfs/go-cid"
	"github.com/pion/transport/v4"
	"github.com/pion/webrtc/v4"

	"github.com/hearthcdn/hearth/internal/logx"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/exchange"
	"github.com/hearthcdn/hearth/relay"
	relayclient "github.com/hearthcdn/hearth/relay/client"
)

// ErrServingOff: an offer arrived while this peer does not serve.
var ErrServingOff = fmt.Errorf("not serving: %w", exchange.ErrRefused)

// Config configures a Peer. RelayURL and Site are required.
type Config struct {
	// RelayURL is the relay's WebSocket endpoint (ws://host/ws).
	RelayURL string
	// Key is the node key; nil makes a fresh one (a browser tab).
	Key ed25519.PrivateKey
	// Site is the site fetched and served.
	Site node.SiteID
	// ICEServers are STUN and TURN servers used besides those of the
	// relay's ice answer, which the peer always asks for.
	ICEServers []webrtc.ICEServer
	// Net and NetDial put the peer in another network (a network namespace
	// of internal/netlab): Net for ICE, NetDial for the relay connection.
	// Nil: the host's. Native only.
	Net     transport.Net
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// LoopbackOnly limits ICE to 127.0.0.1 (native tests).
	LoopbackOnly bool
	// RelayOnly makes every connection relayed-only
	// (exchange.TransportConfig.RelayOnly): TURN from the relay's ice
	// answer, and no address of this peer in its signalling.
	RelayOnly bool
	// RelayOnlyServing does so for the connections the peer serves only
	// (a seeding tab that hides its address from those it serves).
	RelayOnlyServing bool

	// Store, if set, makes a Fetcher that fetches into it.
	Store node.Blockstore
	// Fetcher tunes the Fetcher (Site, Store, Dialer and Finder are set here).
	Fetcher exchange.FetcherConfig

	// Serve, if set, is what the peer serves to others once SetServing(true).
	Serve node.Getter
	// Role is how the peer announces itself when serving (seeder or tab).
	Role relay.Role
	// UploadRate caps served block bytes per second; 0: unlimited.
	UploadRate int64
	// MaxPeers caps the connections served; 0: the exchange's default.
	MaxPeers int
	// WrapHandler, if set, wraps the handler of accepted connections
	// (tests make a lying seeder with it).
	WrapHandler func(exchange.Handler) exchange.Handler

	// Logger receives logs (a *slog.Logger natively); nil discards them.
	Logger *logx.Logger
}

// Peer is a running swarm peer. Its methods are safe for concurrent use.
type Peer struct {
	cfg       Config
	Relay     *relayclient.Client
	Transport *exchange.Transport
	Fetcher   *exchange.Fetcher // nil without Config.Store
	Server    *exchange.Server  // nil without Config.Serve

	serving atomic.Bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu    sync.Mutex
	roots []cid.Cid
}

// Start connects to the relay (in the background: it reconnects on its
// own) and starts the signalling loop. Close stops everything.
func Start(cfg Config) (*Peer, error) {
	if cfg.RelayURL == "" {
		return nil, fmt.Errorf("swarm: no relay URL: %w", relay.ErrBadConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = logx.Discard()
	}
	if cfg.Role == "" {
		cfg.Role = relay.RoleTab
	}
	rc, err := relayclient.New(relayclient.Config{URL: cfg.RelayURL, Key: cfg.Key, Logger: cfg.Logger, NetDial: cfg.NetDial})
	if err != nil {
		return nil, err
	}
	p := &Peer{cfg: cfg, Relay: rc}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	var handler exchange.Handler
	if cfg.Serve != nil {
		p.Server, err = exchange.NewServer(exchange.ServerConfig{Store: cfg.Serve, UploadRate: cfg.UploadRate,
			MaxPeers: cfg.MaxPeers, Logger: cfg.Logger})
		if err != nil {
			_ = rc.Close()
			return nil, err
		}
		handler = gate{p}
		if cfg.WrapHandler != nil {
			handler = cfg.WrapHandler(handler)
		}
	}
	p.Transport, err = exchange.NewTransport(exchange.TransportConfig{
		Signaler:         exchange.SignalerFunc(p.signal),
		Handler:          handler,
		ICEServers:       cfg.ICEServers,
		ICESource:        p.relayICE,
		Net:              cfg.Net,
		LoopbackOnly:     cfg.LoopbackOnly,
		RelayOnly:        cfg.RelayOnly,
		RelayOnlyServing: cfg.RelayOnlyServing,
		Logger:           cfg.Logger,
	})
	if err != nil {
		p.closeParts()
		return nil, err
	}
	if cfg.Store != nil {
		fc := cfg.Fetcher
		fc.Site = cfg.Site.String()
		fc.Store = cfg.Store
		fc.Dialer = p.Transport
		fc.Finder = exchange.FinderFunc(p.find)
		if fc.Logger == nil {
			fc.Logger = cfg.Logger
		}
		if p.Fetcher, err = exchange.NewFetcher(fc); err != nil {
			p.closeParts()
			return nil, err
		}
	}
	p.wg.Add(1)
	go func() { // owned by p: Close cancels and waits
		defer p.wg.Done()
		p.signals()
	}()
	return p, nil
}

// ID returns the peer's ID (its node key's text form).
func (p *Peer) ID() string { return p.Relay.ID().String() }

// signal sends one signalling message through the relay.
func (p *Peer) signal(ctx context.Context, to string, m exchange.SignalMsg) error {
	id, err := node.ParseSiteID(to)
	if err != nil {
		return fmt.Errorf("signalling %s: %w", to, err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding signal: %w", err)
	}
	return p.Relay.Signal(ctx, id, b)
}

// find asks the relay for peers of site.
func (p *Peer) find(ctx context.Context, site string, n int, exclude []string) ([]string, error) {
	id, err := node.ParseSiteID(site)
	if err != nil {
		return nil, err
	}
	var ex []node.SiteID
	for _, e := range exclude {
		if x, err := node.ParseSiteID(e); err == nil {
			ex = append(ex, x)
		}
	}
	peers, err := p.Relay.Find(ctx, id, n, ex)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(peers))
	for _, pe := range peers {
		if pe.ID != p.Relay.ID() {
			out = append(out, pe.ID.String())
		}
	}
	return out, nil
}

// Find returns up to n peers serving the site.
func (p *Peer) Find(ctx context.Context, n int) ([]string, error) {
	return p.find(ctx, p.cfg.Site.String(), n, nil)
}

// signals hands incoming signalling messages to the transport.
func (p *Peer) signals() {
	for {
		select {
		case <-p.ctx.Done():
			return
		case s, ok := <-p.Relay.Signals():
			if !ok {
				return
			}
			if s.Err != nil {
				continue // a signal of ours refused: the dial times out
			}
			var m exchange.SignalMsg
			if err := json.Unmarshal(s.Payload, &m); err != nil {
				p.cfg.Logger.Debug("bad signal", "from", s.Peer.String(), "err", err)
				continue
			}
			p.Transport.HandleSignal(s.Peer.String(), m)
		}
	}
}

// SetServing turns serving on or off and announces (or withdraws) the
// site with roots. It waits, up to ctx, for the relay to take the
// announcement; when the relay is unreachable the announcement goes out on
// the next connection.
func (p *Peer) SetServing(ctx context.Context, on bool, roots ...cid.Cid) error {
	if p.Server == nil {
		return errors.New("swarm: this peer has nothing to serve")
	}
	p.serving.Store(on)
	a := relayclient.Announcement{Role: p.cfg.Role}
	if on {
		p.mu.Lock()
		if len(roots) > 0 {
			p.roots = roots
		}
		a.Sites = []relayclient.SiteRoots{{Site: p.cfg.Site, Roots: p.roots}}
		p.mu.Unlock()
		a.Capacity = 32
		if p.cfg.MaxPeers > 0 {
			a.Capacity = p.cfg.MaxPeers
		}
	}
	return p.Relay.Announce(ctx, a)
}

// Serving reports whether the peer serves.
func (p *Peer) Serving() bool { return p.serving.Load() }

// Close stops the peer and waits for its goroutines.
func (p *Peer) Close() error {
	p.cancel()
	p.closeParts()
	p.wg.Wait()
	return nil
}

func (p *Peer) closeParts() {
	if p.Fetcher != nil {
		_ = p.Fetcher.Close()
	}
	if p.Transport != nil {
		_ = p.Transport.Close()
	}
	if p.Server != nil {
		_ = p.Server.Close()
	}
	_ = p.Relay.Close()
}

// WaitReady waits until the relay connection is up.
func (p *Peer) WaitReady(ctx context.Context) error { return p.Relay.WaitReady(ctx) }

// gate admits connections only while serving.
type gate struct{ p *Peer }

func (g gate) Admit(peer string) error {
	if !g.p.serving.Load() {
		return ErrServingOff
	}
	return g.p.Server.Admit(peer)
}

func (g gate) Release(peer string) { g.p.Server.Release(peer) }

func (g gate) ServeConn(ctx context.Context, peer string, c exchange.Conn) error {
	return g.p.Server.ServeConn(ctx, peer, c)
}

// relayICE is the transport's ICESource: the STUN and TURN servers of the
// relay's ice answer (the relay client keeps it while its credentials are
// fresh).
func (p *Peer) relayICE(ctx context.Context) ([]webrtc.ICEServer, error) {
	a, err := p.Relay.CachedICEServers(ctx)
	if err != nil {
		return nil, err
	}
	servers := make([]webrtc.ICEServer, 0, len(a.Servers))
	for _, s := range a.Servers {
		servers = append(servers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return servers, nil
}
