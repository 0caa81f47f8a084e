package relayclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
)

// session is one WebSocket connection to the relay, from hello to
// disconnect. Its goroutines (reader, writer, keep-alive) run in an errgroup
// that connect waits for.
type session struct {
	c      *Client
	ws     wsConn
	ctx    context.Context // cancelled when any session goroutine fails
	out    chan []byte
	limits relay.Limits

	mu      sync.Mutex
	pending map[uint64]chan *relay.Message
}

// connect runs one session: dial, hello, restore, serve until it fails.
// wasReady reports whether the session reached StateReady.
func (c *Client) connect() (wasReady bool, err error) {
	dctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialTimeout)
	defer cancel()
	ws, err := dial(dctx, c.cfg.URL, c.cfg.NetDial)
	if err != nil {
		return false, fmt.Errorf("dialling relay: %w", err)
	}
	defer func() { _ = ws.CloseNow() }()
	ws.SetReadLimit(int64(c.cfg.MaxMessageSize))
	limits, err := c.hello(dctx, ws)
	if err != nil {
		return false, err
	}
	cancel()

	g, gctx := errgroup.WithContext(c.ctx)
	s := &session{
		c:       c,
		ws:      ws,
		ctx:     gctx,
		out:     make(chan []byte, 64),
		limits:  limits,
		pending: make(map[uint64]chan *relay.Message),
	}
	keepAlive := c.cfg.KeepAlive
	if limits.IdleTimeout > 0 {
		keepAlive = min(keepAlive, time.Duration(limits.IdleTimeout)*time.Second/3)
	}
	g.Go(s.readLoop)
	g.Go(s.writeLoop)
	g.Go(func() error { return s.keepAlive(keepAlive) })
	g.Go(func() error {
		// Restore what the previous session had, then go ready. A
		// refusal is logged, not fatal: the relay keeps refusing it.
		if err := c.restore(s); err != nil {
			return err
		}
		c.mu.Lock()
		c.sess = s
		close(c.ready)
		c.mu.Unlock()
		c.setState(StateReady)
		wasReady = true
		c.log.Info("relay connected", "url", c.cfg.URL, "peer", c.id)
		return nil
	})
	err = g.Wait()
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
		c.ready = make(chan struct{})
	}
	c.mu.Unlock()
	return wasReady, err
}

// hello reads the challenge, answers it and reads the welcome.
func (c *Client) hello(ctx context.Context, ws wsConn) (relay.Limits, error) {
	var m relay.Message
	if err := readMsg(ctx, ws, &m); err != nil {
		return relay.Limits{}, fmt.Errorf("reading challenge: %w", err)
	}
	if m.Type != relay.TypeChallenge || len(m.Nonce) != relay.NonceSize {
		return relay.Limits{}, fmt.Errorf("expected challenge, got %q: %w", m.Type, relay.ErrBadMessage)
	}
	b, err := relay.Encode(relay.SignHello(c.key, m.Nonce))
	if err != nil {
		return relay.Limits{}, err
	}
	if err := ws.Write(ctx, b); err != nil {
		return relay.Limits{}, fmt.Errorf("writing hello: %w", err)
	}
	if err := readMsg(ctx, ws, &m); err != nil {
		return relay.Limits{}, fmt.Errorf("reading welcome: %w", err)
	}
	switch {
	case m.Type == relay.TypeError:
		return relay.Limits{}, fmt.Errorf("relay refused hello: %s: %w", m.Reason, m.Code.Err())
	case m.Type != relay.TypeWelcome:
		return relay.Limits{}, fmt.Errorf("expected welcome, got %q: %w", m.Type, relay.ErrBadMessage)
	case m.Peer != c.id.String():
		return relay.Limits{}, fmt.Errorf("welcome for %q: %w", m.Peer, relay.ErrBadMessage)
	}
	var l relay.Limits
	if m.Limits != nil {
		l = *m.Limits
	}
	return l, nil
}

func readMsg(ctx context.Context, ws wsConn, m *relay.Message) error {
	text, b, err := ws.Read(ctx)
	if err != nil {
		return err
	}
	if !text {
		return fmt.Errorf("binary frame from relay: %w", relay.ErrBadMessage)
	}
	return relay.Decode(b, m)
}

// restore sends the current announcement and subscriptions.
func (c *Client) restore(s *session) error {
	c.mu.Lock()
	ann := c.announce
	sites := make([]node.SiteID, 0, len(c.subs))
	for site := range c.subs {
		sites = append(sites, site)
	}
	c.mu.Unlock()
	if ann != nil {
		m := *ann
		if _, err := s.request(s.ctx, &m); err != nil {
			if !isRefusal(err) {
				return err
			}
			c.log.Warn("relay refused announce", "err", err)
		}
	}
	for _, site := range sites {
		if _, err := s.request(s.ctx, &relay.Message{Type: relay.TypeSubscribe, Site: site.String()}); err != nil {
			if !isRefusal(err) {
				return err
			}
			c.log.Warn("relay refused subscribe", "site", site, "err", err)
		}
	}
	return nil
}

// refusal is an error answer from the relay.
type refusal struct {
	typ    relay.Type
	reason string
	err    error
}

func (r *refusal) Error() string { return fmt.Sprintf("relay refused %s: %s", r.typ, r.reason) }
func (r *refusal) Unwrap() error { return r.err }

func isRefusal(err error) bool {
	var r *refusal
	return errors.As(err, &r)
}

// request sends m (setting its ID) and waits for the answer. An error
// answer becomes an error wrapping the sentinel of its code.
func (s *session) request(ctx context.Context, m *relay.Message) (*relay.Message, error) {
	m.ID = s.c.nextID.Add(1)
	b, err := relay.Encode(m)
	if err != nil {
		return nil, err
	}
	if s.limits.MaxMessage > 0 && len(b) > s.limits.MaxMessage {
		return nil, fmt.Errorf("%s of %d bytes, relay limit %d: %w", m.Type, len(b), s.limits.MaxMessage, relay.ErrTooLarge)
	}
	ch := make(chan *relay.Message, 1)
	s.mu.Lock()
	s.pending[m.ID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, m.ID)
		s.mu.Unlock()
	}()
	if err := s.enqueue(ctx, b); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if r.Type == relay.TypeError {
			return nil, &refusal{typ: m.Type, reason: r.Reason, err: r.Code.Err()}
		}
		return r, nil
	case <-s.ctx.Done():
		return nil, s.doneErr()
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for relay answer to %s: %w", m.Type, ctx.Err())
	}
}

func (s *session) doneErr() error {
	if s.c.ctx.Err() != nil {
		return relay.ErrClosed
	}
	return relay.ErrDisconnected
}

// enqueue hands b to the writer.
func (s *session) enqueue(ctx context.Context, b []byte) error {
	select {
	case s.out <- b:
		return nil
	case <-s.ctx.Done():
		return s.doneErr()
	case <-ctx.Done():
		return fmt.Errorf("sending to relay: %w", ctx.Err())
	}
}

func (s *session) writeLoop() error {
	for {
		select {
		case b := <-s.out:
			ctx, cancel := context.WithTimeout(s.ctx, s.c.cfg.WriteTimeout)
			err := s.ws.Write(ctx, b)
			cancel()
			if err != nil {
				return fmt.Errorf("writing to relay: %w", err)
			}
		case <-s.ctx.Done():
			return nil
		}
	}
}

func (s *session) keepAlive(every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return nil
		}
		ctx, cancel := context.WithTimeout(s.ctx, every)
		_, err := s.request(ctx, &relay.Message{Type: relay.TypePing})
		cancel()
		if err != nil && s.ctx.Err() == nil {
			return fmt.Errorf("relay keep-alive: %w", err)
		}
	}
}

func (s *session) readLoop() error {
	for {
		var m relay.Message
		if err := readMsg(s.ctx, s.ws, &m); err != nil {
			if errors.Is(err, relay.ErrBadMessage) || errors.Is(err, relay.ErrUnsupportedVersion) {
				s.c.log.Warn("bad message from relay", "err", err)
				continue
			}
			if s.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading from relay: %w", err)
		}
		s.dispatch(&m)
	}
}

func (s *session) dispatch(m *relay.Message) {
	if m.ID != 0 {
		s.mu.Lock()
		ch := s.pending[m.ID]
		s.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
			return
		}
	}
	switch m.Type {
	case relay.TypeSignal:
		from, err := node.ParseSiteID(m.From)
		if err != nil || len(m.Payload) == 0 {
			s.c.log.Warn("bad signal from relay", "from", m.From)
			return
		}
		s.c.deliverSignal(Signal{Peer: from, Payload: m.Payload})
	case relay.TypeRecord:
		s.c.deliverRecord(m.Site, m.Record)
	case relay.TypeMembers:
		s.c.deliverMembers(m.Site, m.Members)
	case relay.TypeError:
		err := m.Code.Err()
		if m.Peer != "" {
			if peer, perr := node.ParseSiteID(m.Peer); perr == nil {
				s.c.deliverSignal(Signal{Peer: peer, Err: fmt.Errorf("signal to %s: %s: %w", peer, m.Reason, err)})
				return
			}
		}
		s.c.log.Warn("error from relay", "code", m.Code, "reason", m.Reason)
	case relay.TypeOK, relay.TypePong, relay.TypePeers, relay.TypeICE:
		// The answer to a request that gave up waiting.
	default:
		s.c.log.Debug("unexpected message from relay", "type", m.Type)
	}
}
