package relayclient

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthcdn/hearth/internal/logx"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
)

// Defaults for the zero fields of Config.
const (
	DefaultMinBackoff     = 250 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultSignalBuffer   = 256
	DefaultKeepAlive      = 20 * time.Second
	DefaultDialTimeout    = 15 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultMaxMessageSize = 1 << 20 // bytes, for messages from the relay
)

// State is the client's connection state.
type State int

// States, in the order a connection goes through them.
const (
	// StateConnecting: dialling the relay and saying hello.
	StateConnecting State = iota
	// StateReady: hello done, announcement and subscriptions restored;
	// requests go out at once.
	StateReady
	// StateDisconnected: the connection dropped or could not be made; the
	// client waits (backoff with jitter) before connecting again.
	StateDisconnected
	// StateClosed: Close was called.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateReady:
		return "ready"
	case StateDisconnected:
		return "disconnected"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Config configures a Client. Only URL is required.
type Config struct {
	// URL is the relay's WebSocket endpoint, e.g.
	// "wss://relay.example.org/ws".
	URL string
	// Key is the node key the client proves in hello. nil makes a fresh
	// key (what a browser tab does, one per page).
	Key ed25519.PrivateKey
	// Logger receives the client's structured logs (a *slog.Logger
	// natively); nil discards them.
	Logger *logx.Logger
	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts: it doubles from MinBackoff up to MaxBackoff, and each wait
	// is drawn uniformly from [d/2, d] ("equal jitter") so that clients
	// cut off together do not come back together.
	MinBackoff, MaxBackoff time.Duration
	// SignalBuffer is the capacity of the Signals channel; signals that
	// arrive while it is full are dropped (and logged).
	SignalBuffer int
	// KeepAlive is how often the client pings the relay; a ping not
	// answered within KeepAlive drops the connection (and the client
	// reconnects). It is lowered to a third of the relay's idle timeout.
	KeepAlive time.Duration
	// DialTimeout bounds one connection attempt including hello.
	DialTimeout time.Duration
	// WriteTimeout bounds writing one message to the relay.
	WriteTimeout time.Duration
	// MaxMessageSize bounds a message from the relay, in bytes.
	MaxMessageSize int
	// OnState, if set, is called on every state change, from the client's
	// goroutine: it must not block.
	OnState func(State)
	// NetDial, if set, opens the TCP connections to the relay (the shape of
	// net.Dialer.DialContext), such as one from a network namespace
	// (internal/netlab); nil is the host's. Native only.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Client is a connection to a relay that survives disconnections: it
// reconnects with exponential backoff and jitter, proves its key again and
// restores its announcement and subscriptions before it reports StateReady.
// All methods are safe for concurrent use.
type Client struct {
	cfg Config
	key ed25519.PrivateKey
	id  node.SiteID
	log *logx.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	signals chan Signal
	nextID  atomic.Uint64

	mu       sync.Mutex
	sess     *session      // the ready session, or nil
	ready    chan struct{} // closed when sess becomes ready
	state    State
	announce *relay.Message            // the announcement to restore, or nil
	subs     map[node.SiteID]*siteSubs // subscriptions to restore

	iceMu    sync.Mutex // held while asking for ICE servers: one request at a time
	ice      ICEServers // the last ice answer
	iceUntil time.Time  // when to ask again
}

// New starts a client connecting to cfg.URL in the background; it returns
// at once. Use WaitReady to wait for the first connection. Errors wrap
// relay.ErrBadConfig.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("relay client without URL: %w", relay.ErrBadConfig)
	}
	if cfg.Key == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating node key: %w", err)
		}
		cfg.Key = priv
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("node key of %d bytes: %w", len(cfg.Key), relay.ErrBadConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = logx.Discard()
	}
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	def(&cfg.MinBackoff, DefaultMinBackoff)
	def(&cfg.MaxBackoff, DefaultMaxBackoff)
	def(&cfg.KeepAlive, DefaultKeepAlive)
	def(&cfg.DialTimeout, DefaultDialTimeout)
	def(&cfg.WriteTimeout, DefaultWriteTimeout)
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.SignalBuffer <= 0 {
		cfg.SignalBuffer = DefaultSignalBuffer
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg:     cfg,
		key:     cfg.Key,
		id:      node.SiteIDOf(cfg.Key.Public().(ed25519.PublicKey)),
		log:     cfg.Logger,
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		signals: make(chan Signal, cfg.SignalBuffer),
		ready:   make(chan struct{}),
		subs:    make(map[node.SiteID]*siteSubs),
	}
	go c.run()
	return c, nil
}

// ID returns the client's node key, the peer ID other peers see.
func (c *Client) ID() node.SiteID { return c.id }

// State returns the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *Client) setState(s State) {
	c.mu.Lock()
	changed := c.state != s
	c.state = s
	c.mu.Unlock()
	if changed && c.cfg.OnState != nil {
		c.cfg.OnState(s)
	}
}

// WaitReady waits until the client is connected (StateReady). Errors:
// ctx's error, or relay.ErrClosed.
func (c *Client) WaitReady(ctx context.Context) error {
	_, err := c.session(ctx)
	return err
}

// session returns the ready session, waiting for one.
func (c *Client) session(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, ready := c.sess, c.ready
		c.mu.Unlock()
		if s != nil {
			return s, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for relay connection: %w", ctx.Err())
		case <-c.ctx.Done():
			return nil, relay.ErrClosed
		}
	}
}

// Close disconnects and stops reconnecting. It waits for the client's
// goroutines, then closes the Signals channel and every subscription's
// channel. It returns nil; later calls do nothing.
func (c *Client) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// run connects, serves the session, and reconnects with backoff until Close.
func (c *Client) run() {
	defer func() {
		c.setState(StateClosed)
		close(c.signals)
		c.mu.Lock()
		for _, ss := range c.subs {
			for _, sub := range ss.subs {
				sub.close()
			}
		}
		c.subs = map[node.SiteID]*siteSubs{}
		c.mu.Unlock()
		close(c.done)
	}()
	attempt := 0
	for {
		c.setState(StateConnecting)
		wasReady, err := c.connect()
		if c.ctx.Err() != nil {
			return
		}
		if wasReady {
			attempt = 0
		}
		c.setState(StateDisconnected)
		d := backoff(attempt, c.cfg.MinBackoff, c.cfg.MaxBackoff)
		attempt++
		c.log.Info("relay connection lost", "url", c.cfg.URL, "err", err, "retry_in", d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return
		}
	}
}

// backoff returns the wait before attempt number attempt (0 first): d =
// min·2^attempt capped at max, drawn uniformly from [d/2, d].
func backoff(attempt int, minD, maxD time.Duration) time.Duration {
	d := maxD
	if attempt < 32 {
		if x := minD << attempt; x > 0 && x < maxD {
			d = x
		}
	}
	half := d / 2
	return half + time.Duration(mrand.Int64N(int64(d-half)+1))
}
