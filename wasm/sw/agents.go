//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"syscall/js"
	"time"

	cid "github.com/ipfs/go-cid"

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
	// wantMax bounds the blocks one "want" names; wantDelay is how long a
	// wanted block waits for others when the agent was asked within
	// wantBusy before (an idle agent is asked at once).
	wantMax   = 32
	wantsOut  = 4 // "want" messages in flight to one agent; more wait here
	wantDelay = time.Millisecond
	wantBusy  = 5 * time.Millisecond
)

// errAgentTimeout: a page agent did not answer within the deadline (its
// tab may have closed; MessagePorts do not say).
var errAgentTimeout = errors.New("page agent did not answer in time")

// agents are the page agents that registered a MessagePort. The worker
// asks the newest one connected to peers, else the newest one that knows
// some (a fresh agent is still connecting). One that misses a deadline is
// suspect, and not asked, until it sends anything again (a closed tab never
// does; a busy one soon does); one that says bye is dropped.
type agents struct {
	timeout  time.Duration
	onRecord func([]byte)

	mu      sync.Mutex
	list    []*agentPort
	changed chan struct{} // closed (and replaced) when an agent reports peers
	ever    atomic.Bool   // an agent has reported peers
	nextID  atomic.Uint64 // request and want ids
}

func newAgents(timeout time.Duration, onRecord func([]byte)) *agents {
	return &agents{timeout: timeout, onRecord: onRecord, changed: make(chan struct{})}
}

// waitLive returns up to max live agents (see live), waiting for one to
// report peers if none can serve yet, until ctx ends (then nil).
func (a *agents) waitLive(ctx context.Context, max int) []*agentPort {
	for {
		a.mu.Lock()
		ch := a.changed
		a.mu.Unlock()
		if l := a.live(max); len(l) > 0 {
			return l
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
}

// everLive reports whether any agent has reported peers since the worker
// started.
func (a *agents) everLive() bool { return a.ever.Load() }

// wake tells waitLive an agent's status changed.
func (a *agents) wake() {
	a.ever.Store(true)
	a.mu.Lock()
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
}

// agentPort is one registered agent.
type agentPort struct {
	a        *agents
	port     js.Value
	clientID string
	onMsg    js.Func

	slots chan struct{} // agentInFlight tokens

	mu      sync.Mutex
	peers   int  // peers the agent knows
	conns   int  // of which connected
	wantOK  bool // the agent reads "want"
	dead    bool
	suspect bool // missed a deadline, silent since
	streams map[uint64]*agentStream

	// Wanted single blocks (see want): the streams waiting for each, by
	// CID key; those not yet asked for; what each "want" asked.
	waiting  map[string][]*agentStream
	unasked  []cid.Cid
	wants    map[uint64][]cid.Cid
	wantDue  bool
	wantSent time.Time
	heard    time.Time // the agent's last message (blocks, progress, status)
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

// pick returns the newest live agent connected to peers, else the newest
// that knows some, or nil.
func (a *agents) pick() *agentPort {
	a.mu.Lock()
	defer a.mu.Unlock()
	var known *agentPort
	for i := len(a.list) - 1; i >= 0; i-- {
		p := a.list[i]
		p.mu.Lock()
		ok := !p.dead && !p.suspect && p.peers > 0
		conns := p.conns
		p.mu.Unlock()
		switch {
		case ok && conns > 0:
			return p
		case ok && known == nil:
			known = p
		}
	}
	return known
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
	waiting := p.waiting
	p.waiting, p.unasked, p.wants = nil, nil, nil
	p.mu.Unlock()
	p.a.remove(p)
	for _, s := range streams {
		s.finish(cause)
	}
	for _, ss := range waiting {
		for _, s := range ss {
			s.finish(cause)
		}
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
	p.heard = time.Now()
	p.mu.Unlock()
	switch jsx.String(m.Get("t")) {
	case agentproto.TypeStatus:
		p.mu.Lock()
		p.peers = m.Get("peers").Int()
		p.conns = 0
		if c := m.Get("connected"); c.Type() == js.TypeNumber {
			p.conns = c.Int()
		}
		p.wantOK = m.Get("want").Truthy()
		known := p.peers > 0
		p.mu.Unlock()
		if known {
			p.a.wake()
		}
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
		_, isWant := p.wants[id]
		p.mu.Unlock()
		if isWant {
			p.wanted(id, m)
			return
		}
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

// Open sends the request to the agent, once one of its slots is free. A
// request for a single raw block goes in a "want" with others (see want).
func (p *agentPort) Open(ctx context.Context, req node.Request) (serve.Stream, error) {
	if req.Root.Prefix().Codec == node.CodecRaw && len(req.Path) == 0 {
		p.mu.Lock()
		ok := p.wantOK
		p.mu.Unlock()
		if ok {
			return p.want(ctx, req.Root)
		}
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	id := p.a.nextID.Add(1)
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
	wantKey string        // the wanted block's CID key, for a want's stream
	asked   bool          // a want's stream: the agent was asked (under mu)

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

// Next returns the next block, waiting for the first one until the agent
// has been silent for the agent deadline, and four times that for each
// next one (an agent that has been streaming and stalls is more likely
// busy than gone). A missed deadline fails the stream and makes the agent
// suspect.
func (s *agentStream) Next() (node.Block, error) {
	d := s.timeout
	s.mu.Lock()
	if s.got {
		d *= 4
	}
	s.mu.Unlock()
	var timer *time.Timer
	var expired <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
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
		// A wanted block's deadline starts when the agent is asked for it.
		started := s.wantKey == "" || s.asked
		s.mu.Unlock()
		if started && timer == nil {
			timer = time.NewTimer(d)
			expired = timer.C
		}
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return node.Block{}, s.ctx.Err()
		case <-expired:
			// The deadline is on the agent's silence, not on this
			// request: while it sends anything (other requests' blocks,
			// its progress while its peers deliver), this one is
			// waiting its turn on a busy or slow machine.
			s.p.mu.Lock()
			since := time.Since(s.p.heard)
			s.p.mu.Unlock()
			if since < d {
				timer.Reset(d - since)
				continue
			}
			s.p.mu.Lock()
			s.p.suspect = true
			s.p.mu.Unlock()
			if s.wantKey != "" {
				// The agent's other wanted blocks would wait behind this
				// one: they all go to the next source now.
				s.p.failWants(errAgentTimeout)
			}
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
	if s.wantKey != "" {
		if !ended {
			s.p.unwant(s)
		}
		return nil
	}
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

// want asks the agent for one raw block: whatever the request's scope and
// range, its answer is that block. Blocks wanted at about the same time go
// to the agent together, as one "want" of up to wantMax CIDs, which it
// fetches as one list (a page of 200 small files costs a handful of
// requests, not 200). Streams waiting for the same block share it. A
// stream's deadline starts when its block is asked for, and is pushed back
// while the agent keeps delivering other wanted blocks.
func (p *agentPort) want(ctx context.Context, c cid.Cid) (serve.Stream, error) {
	s := &agentStream{p: p, ctx: ctx, timeout: p.a.timeout, wake: make(chan struct{}, 1), release: func() {}, wantKey: c.KeyString()}
	p.mu.Lock()
	if p.dead {
		p.mu.Unlock()
		return nil, errors.New("page agent gone")
	}
	if p.waiting == nil {
		p.waiting = make(map[string][]*agentStream)
		p.wants = make(map[uint64][]cid.Cid)
	}
	first := len(p.waiting[s.wantKey]) == 0
	if !first { // shares that block's want
		q := p.waiting[s.wantKey][0]
		q.mu.Lock()
		s.asked = q.asked
		q.mu.Unlock()
	}
	p.waiting[s.wantKey] = append(p.waiting[s.wantKey], s)
	if first {
		p.unasked = append(p.unasked, c)
	}
	schedule := first && !p.wantDue
	busy := time.Since(p.wantSent) < wantBusy
	full := len(p.unasked) >= wantMax
	if schedule {
		p.wantDue = true
	}
	p.mu.Unlock()
	switch {
	case full:
		p.sendWants()
	case schedule && busy:
		time.AfterFunc(wantDelay, p.sendWants)
	case schedule:
		p.sendWants()
	}
	return s, nil
}

// sendWants posts the blocks not yet asked for, wantMax per "want", while
// fewer than wantsOut are in flight; the streams' deadlines start then.
func (p *agentPort) sendWants() {
	p.mu.Lock()
	p.wantDue = false
	p.wantSent = time.Now()
	var msgs []js.Value
	var asked []*agentStream
	for len(p.unasked) > 0 && len(p.wants) < wantsOut && !p.dead {
		n := min(len(p.unasked), wantMax)
		cids := p.unasked[:n:n]
		p.unasked = p.unasked[n:]
		id := p.a.nextID.Add(1) // atomic: p.mu is held, and pick locks a.mu then p.mu
		p.wants[id] = cids
		for _, c := range cids {
			asked = append(asked, p.waiting[c.KeyString()]...)
		}
		msgs = append(msgs, agentproto.EncodeWant(id, cids))
	}
	p.mu.Unlock()
	for _, s := range asked {
		s.markAsked()
	}
	for _, m := range msgs {
		if _, err := jsx.Try(func() js.Value { return p.port.Call("postMessage", m) }); err != nil {
			p.kill(err)
			return
		}
	}
}

func (s *agentStream) markAsked() {
	s.mu.Lock()
	s.asked = true
	s.mu.Unlock()
	s.signal()
}

// wanted delivers a "blocks" or "end" message answering want id.
func (p *agentPort) wanted(id uint64, m js.Value) {
	var blocks []node.Block
	var failure error
	if jsx.String(m.Get("t")) == agentproto.TypeBlocks {
		var err error
		if blocks, err = agentproto.DecodeBlocks(m); err != nil {
			failure = err
		}
	}
	done := jsx.String(m.Get("t")) == agentproto.TypeEnd || m.Get("end").Truthy() || failure != nil
	if failure == nil && jsx.String(m.Get("t")) == agentproto.TypeEnd {
		if e := jsx.String(m.Get("err")); e != "" {
			failure = fmt.Errorf("page agent: %s", e)
		}
	}
	type delivery struct {
		s *agentStream
		b node.Block
	}
	var got []delivery
	var failed []*agentStream
	p.mu.Lock()
	for _, b := range blocks {
		k := b.Cid.KeyString()
		for _, s := range p.waiting[k] {
			got = append(got, delivery{s, b})
		}
		delete(p.waiting, k)
	}
	more := false
	if done {
		for _, c := range p.wants[id] {
			k := c.KeyString()
			failed = append(failed, p.waiting[k]...)
			delete(p.waiting, k)
		}
		delete(p.wants, id)
		more = len(p.unasked) > 0
	}
	p.mu.Unlock()
	if more {
		p.sendWants()
	}
	for _, d := range got {
		d.s.push([]node.Block{d.b})
		d.s.finish(io.EOF)
	}
	if failure == nil {
		failure = errors.New("page agent did not send the block")
	}
	for _, s := range failed {
		s.finish(failure)
	}
}

// failWants fails every wanted block's stream with err.
func (p *agentPort) failWants(err error) {
	p.mu.Lock()
	waiting := p.waiting
	p.waiting, p.unasked = nil, nil
	p.wants = make(map[uint64][]cid.Cid) // late answers are dropped
	p.mu.Unlock()
	for _, ss := range waiting {
		for _, s := range ss {
			s.finish(err)
		}
	}
}

// unwant forgets a wanted block's stream that closed before it came.
func (p *agentPort) unwant(s *agentStream) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ss := p.waiting[s.wantKey]
	for i, x := range ss {
		if x == s {
			p.waiting[s.wantKey] = append(ss[:i:i], ss[i+1:]...)
			break
		}
	}
	if len(p.waiting[s.wantKey]) == 0 {
		delete(p.waiting, s.wantKey)
		// Nobody waits for it now: not asked for yet, it never will be.
		p.unasked = slices.DeleteFunc(p.unasked, func(c cid.Cid) bool { return c.KeyString() == s.wantKey })
	}
}
