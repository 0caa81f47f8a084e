//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall/js"
	"time"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/wasm/internal/agentproto"
	"github.com/hearthcdn/hearth/wasm/internal/jsx"
	"github.com/hearthcdn/hearth/wasm/internal/serve"
)

const (
	// agentCredit is how many block bytes an agent may send ahead of the
	// worker's reading; a grant follows each agentGrant bytes read.
	agentCredit = 8 << 20
	agentGrant  = 2 << 20
	// maxAgents bounds the agent ports kept (one per open page).
	maxAgents = 32
	// agentInFlight bounds the requests in flight to one agent: more wait
	// their turn here, before their deadline starts, rather than queue in
	// the agent and miss it (a page of 200 small files asks at once).
	agentInFlight = 32
)

// errAgentTimeout: a page agent did not answer within the deadline (its
// tab may have closed; MessagePorts do not say).
var errAgentTimeout = errors.New("page agent did not answer in time")

// agents are the page agents that registered a MessagePort. The worker
// asks the newest one that reports peers. One that misses a deadline is
// suspect, and not asked, until it sends anything again (a closed tab never
// does; a busy one soon does); one that says bye is dropped.
type agents struct {
	timeout  time.Duration
	onRecord func([]byte)

	mu     sync.Mutex
	list   []*agentPort
	nextID uint64
}

func newAgents(timeout time.Duration, onRecord func([]byte)) *agents {
	return &agents{timeout: timeout, onRecord: onRecord}
}

// agentPort is one registered agent.
type agentPort struct {
	a        *agents
	port     js.Value
	clientID string
	onMsg    js.Func

	slots chan struct{} // agentInFlight tokens

	mu      sync.Mutex
	peers   int
	dead    bool
	suspect bool // missed a deadline, silent since
	streams map[uint64]*agentStream
}

var _ serve.Source = (*agentPort)(nil)

// add registers a page's port. It is called from a JS callback: it only
// sets up the listener.
func (a *agents) add(port js.Value, clientID string) {
	p := &agentPort{a: a, port: port, clientID: clientID, streams: make(map[uint64]*agentStream),
		slots: make(chan struct{}, agentInFlight)}
	p.onMsg = js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) > 0 {
			p.handle(args[0].Get("data"))
		}
		return nil
	})
	port.Set("onmessage", p.onMsg)
	a.mu.Lock()
	// A page that registers again (a new agent in the same tab) replaces
	// its old port.
	var keep []*agentPort
	var drop []*agentPort
	for _, q := range a.list {
		if clientID != "" && q.clientID == clientID {
			drop = append(drop, q)
		} else {
			keep = append(keep, q)
		}
	}
	a.list = append(keep, p)
	if len(a.list) > maxAgents {
		drop = append(drop, a.list[0])
		a.list = a.list[1:]
	}
	a.mu.Unlock()
	for _, q := range drop {
		q.kill(errors.New("replaced"))
	}
}

// pick returns the newest live agent with peers, or nil.
func (a *agents) pick() *agentPort {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.list) - 1; i >= 0; i-- {
		p := a.list[i]
		p.mu.Lock()
		ok := !p.dead && !p.suspect && p.peers > 0
		p.mu.Unlock()
		if ok {
			return p
		}
	}
	return nil
}

// live returns up to max agents that can serve, newest first. A navigation
// may be served while the agent of the page being left says bye: the
// request then moves on to the next agent before the origin.
func (a *agents) live(max int) []*agentPort {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*agentPort
	for i := len(a.list) - 1; i >= 0 && len(out) < max; i-- {
		p := a.list[i]
		p.mu.Lock()
		ok := !p.dead && !p.suspect && p.peers > 0
		p.mu.Unlock()
		if ok {
			out = append(out, p)
		}
	}
	return out
}

func (a *agents) remove(p *agentPort) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, q := range a.list {
		if q == p {
			a.list = append(a.list[:i], a.list[i+1:]...)
			return
		}
	}
}

// kill drops the agent and fails its streams.
func (p *agentPort) kill(cause error) {
	p.mu.Lock()
	if p.dead {
		p.mu.Unlock()
		return
	}
	p.dead = true
	streams := p.streams
	p.streams = map[uint64]*agentStream{}
	p.mu.Unlock()
	p.a.remove(p)
	for _, s := range streams {
		s.finish(cause)
	}
	p.port.Set("onmessage", js.Null())
	_, _ = jsx.Try(func() js.Value { return p.port.Call("close") })
	p.onMsg.Release()
}

// handle processes one message from the agent; called from a JS callback.
func (p *agentPort) handle(m js.Value) {
	if m.Type() != js.TypeObject {
		return
	}
	p.mu.Lock()
	p.suspect = false
	p.mu.Unlock()
	switch jsx.String(m.Get("t")) {
	case agentproto.TypeStatus:
		p.mu.Lock()
		p.peers = m.Get("peers").Int()
		p.mu.Unlock()
	case agentproto.TypeBye:
		p.kill(errors.New("agent said bye"))
	case agentproto.TypeRecord:
		if b, err := jsx.Bytes(m.Get("rec")); err == nil && len(b) <= node.MaxRecordSize {
			go p.a.onRecord(b) // owned by the record log's mutex; ends when stored
		}
	case agentproto.TypeBlocks, agentproto.TypeEnd:
		id := uint64(m.Get("id").Float())
		p.mu.Lock()
		s := p.streams[id]
		p.mu.Unlock()
		if s == nil {
			return // cancelled
		}
		if jsx.String(m.Get("t")) == agentproto.TypeEnd {
			if e := jsx.String(m.Get("err")); e != "" {
				s.finish(fmt.Errorf("page agent: %s", e))
			} else {
				s.finish(io.EOF)
			}
			return
		}
		blocks, err := agentproto.DecodeBlocks(m)
		if err != nil {
			s.finish(err)
			return
		}
		s.push(blocks)
		if m.Get("end").Truthy() {
			s.finish(io.EOF)
		}
	}
}

func (p *agentPort) Kind() serve.Kind { return serve.FromPeer }

// Open sends the request to the agent, once one of its slots is free.
func (p *agentPort) Open(ctx context.Context, req node.Request) (serve.Stream, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.a.mu.Lock()
	p.a.nextID++
	id := p.a.nextID
	p.a.mu.Unlock()
	s := &agentStream{p: p, id: id, ctx: ctx, timeout: p.a.timeout, wake: make(chan struct{}, 1)}
	s.release = sync.OnceFunc(func() { <-p.slots })
	p.mu.Lock()
	if p.dead {
		p.mu.Unlock()
		s.release()
		return nil, errors.New("page agent gone")
	}
	p.streams[id] = s
	p.mu.Unlock()
	if _, err := jsx.Try(func() js.Value {
		return p.port.Call("postMessage", agentproto.EncodeRequest(id, req, agentCredit))
	}); err != nil {
		p.kill(err)
		s.release()
		return nil, fmt.Errorf("asking page agent: %w", err)
	}
	return s, nil
}

// agentStream is one request's answer from an agent.
type agentStream struct {
	p       *agentPort
	id      uint64
	ctx     context.Context
	timeout time.Duration
	wake    chan struct{} // capacity 1
	release func()        // gives the agent's slot back, once

	mu     sync.Mutex
	queue  []node.Block
	end    error // io.EOF or the failure, once finished
	read   int   // bytes read since the last grant
	got    bool  // a block arrived
	closed bool
}

func (s *agentStream) push(b []node.Block) {
	s.mu.Lock()
	if s.end == nil {
		s.queue = append(s.queue, b...)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *agentStream) finish(err error) {
	s.mu.Lock()
	if s.end == nil {
		s.end = err
	}
	s.mu.Unlock()
	s.release() // the agent is done with it
	s.signal()
}

func (s *agentStream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Next returns the next block, waiting at most the agent deadline for the
// first one and four times that for each next one (an agent that has been
// streaming and stalls is more likely busy than gone). A missed deadline
// fails the stream and makes the agent suspect.
func (s *agentStream) Next() (node.Block, error) {
	d := s.timeout
	s.mu.Lock()
	if s.got {
		d *= 4
	}
	s.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			b := s.queue[0]
			s.queue[0] = node.Block{}
			s.queue = s.queue[1:]
			s.got = true
			s.read += len(b.Data)
			grant := s.read >= agentGrant && s.end == nil
			if grant {
				s.read = 0
			}
			s.mu.Unlock()
			if grant {
				_, _ = jsx.Try(func() js.Value {
					return s.p.port.Call("postMessage", agentproto.Simple(agentproto.TypeCredit,
						map[string]any{"id": float64(s.id), "n": agentGrant}))
				})
			}
			return b, nil
		}
		if s.end != nil {
			err := s.end
			s.mu.Unlock()
			return node.Block{}, err
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return node.Block{}, s.ctx.Err()
		case <-timer.C:
			s.p.mu.Lock()
			s.p.suspect = true
			s.p.mu.Unlock()
			return node.Block{}, errAgentTimeout
		}
	}
}

// Close cancels the request at the agent if it has not ended.
func (s *agentStream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ended := s.end != nil
	s.end = io.EOF
	s.queue = nil
	s.mu.Unlock()
	s.p.mu.Lock()
	delete(s.p.streams, s.id)
	s.p.mu.Unlock()
	s.release()
	if !ended {
		_, _ = jsx.Try(func() js.Value {
			return s.p.port.Call("postMessage", agentproto.Simple(agentproto.TypeCancel, map[string]any{"id": float64(s.id)}))
		})
	}
	return nil
}
