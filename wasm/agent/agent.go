//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall/js"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/pion/webrtc/v4"

	"github.com/hearthcdn/hearth/js/jsconfig"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/exchange"
	"github.com/hearthcdn/hearth/relay"
	"github.com/hearthcdn/hearth/wasm/internal/agentproto"
	"github.com/hearthcdn/hearth/wasm/internal/jsx"
	"github.com/hearthcdn/hearth/wasm/swarm"
)

const (
	// statusEvery is how often the agent checks its peers and tells the
	// worker when the counts changed; statusSoon, at the start, until it
	// is first connected to one.
	statusEvery = 2 * time.Second
	statusSoon  = 100 * time.Millisecond
	// progressEvery is how often, while the worker's requests are in
	// progress and peers deliver bytes, the agent tells the worker it is
	// working: the worker's deadline then follows the transfer's progress
	// (a busy machine is slow, not gone), and still expires when peers
	// send nothing.
	progressEvery = 250 * time.Millisecond
	// warmConns is how many peers the agent connects to ahead of any
	// request (exchange.Fetcher.Warm).
	warmConns = 2
	// findPeers is how many peers the agent asks the relay for.
	findPeers = 8
	// batchBytes is how many block bytes go in one message to the worker
	// at most (blocks ready at once are batched; none waits for a batch).
	batchBytes = 1 << 20
	// maxRequests bounds the worker's requests in progress at once; the
	// Fetcher spreads them over connections under its own limits.
	maxRequests = 1024
)

// agent is the page agent's state.
type agent struct {
	cfg    *jsconfig.Config
	site   node.SiteID
	origin string
	hub    *hub
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	peer    *swarm.Peer // nil until started, or without relays
	port    js.Value    // the worker's port, or undefined
	onMsg   js.Func
	reqs    map[uint64]*request
	peers   int // last count told to the worker
	conns   int // of which connected, last told
	seedOn  bool
	root    cid.Cid // the latest verified root, for announcing
	lastErr string

	bytesIn atomic.Int64 // block bytes passed on to the worker
}

func newAgent(cfg *jsconfig.Config, origin string) *agent {
	a := &agent{cfg: cfg, site: cfg.SiteID(), origin: origin, hub: newHub(), reqs: make(map[uint64]*request),
		peers: -1} // seeding waits for the visitor's consent (api seed)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a
}

// start connects to the relay in the background.
func (a *agent) start() {
	if len(a.cfg.Relays) == 0 {
		a.setErr("no relay configured")
		return
	}
	var ice []webrtc.ICEServer
	for _, s := range a.cfg.ICEServers {
		ice = append(ice, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	p, err := swarm.Start(swarm.Config{
		RelayURL:   a.cfg.Relays[0],
		Site:       a.site,
		ICEServers: ice,
		Store:      a.hub,
		// Stream: hand each verified block to the hub at once, not in
		// the Fetcher's default 4 MiB batches (a store write here is a
		// map insert).
		Fetcher:    exchange.FetcherConfig{BatchBytes: 1},
		Serve:      &cacheStore{origin: a.origin},
		Role:       relay.RoleTab,
		UploadRate: int64(a.cfg.UploadKiBps) << 10,
		MaxPeers:   8,
		// A seeding tab may hide its address from those it serves.
		RelayOnlyServing: a.cfg.RelayOnly,
		Logger:           logger(),
	})
	if err != nil {
		a.setErr(err.Error())
		return
	}
	a.mu.Lock()
	a.peer = p
	a.mu.Unlock()
	go a.run(p) // owned by the agent: ends with a.ctx
}

func (a *agent) setErr(s string) {
	a.mu.Lock()
	a.lastErr = s
	a.mu.Unlock()
}

// run finds peers, connects to warmConns of them ahead of any request (at
// the start only), keeps the worker told how many it knows and is
// connected to, forwards root records from the relay and announces the
// tab when seeding.
func (a *agent) run(p *swarm.Peer) {
	if err := p.WaitReady(a.ctx); err != nil {
		return
	}
	go a.followRecords(p)  // owned by the agent: ends with a.ctx
	go a.reportProgress(p) // owned by the agent: ends with a.ctx
	a.applySeeding()
	warmed := false
	for {
		n, conns := 0, 0
		for _, fp := range p.Fetcher.Peers() {
			if !fp.Banned {
				n++
			}
			if fp.Connected {
				conns++
			}
		}
		if n == 0 {
			ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
			ids, err := p.Find(ctx, findPeers)
			cancel()
			if err == nil && len(ids) > 0 {
				p.Fetcher.AddPeers(ids...)
				n = len(ids)
			}
		}
		// Connect ahead once, at the start: later, a connection a seeder
		// closed as idle (to make room) is dialled again only when needed.
		if !warmed {
			p.Fetcher.Warm(warmConns) // a no-op once warmConns are connected or dialling
		}
		warmed = warmed || conns > 0
		a.setPeers(n, conns)
		wait := statusEvery
		if !warmed && n > 0 {
			wait = statusSoon
		}
		select {
		case <-a.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// reportProgress posts a "status" to the worker every progressEvery in
// which requests were in progress and the agent's peers delivered block
// bytes.
func (a *agent) reportProgress(p *swarm.Peer) {
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	var last int64
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-tick.C:
		}
		var in int64
		for _, fp := range p.Fetcher.Peers() {
			in += fp.BytesIn
		}
		moved := in != last
		last = in
		a.mu.Lock()
		open, port, n, conns := len(a.reqs), a.port, a.peers, a.conns
		a.mu.Unlock()
		if moved && open > 0 && n >= 0 && !port.IsUndefined() {
			post(port, statusMsg(n, conns))
		}
	}
}

// followRecords subscribes to the site's root records: each (verified by
// the relay client) goes to the worker, and the latest root is what the
// tab announces when seeding. While the relay connection is up (so the
// subscription is live: the relay sends every newer record as it comes),
// the latest record is also repeated to the worker every recordRepeat: it
// tells the worker that its record is still the latest, and a navigation
// need not wait for the origin's (jsconfig.Config.MaxStaleMS).
func (a *agent) followRecords(p *swarm.Peer) {
	sub, err := p.Relay.Subscribe(a.ctx, a.site)
	if err != nil {
		return
	}
	defer sub.Close()
	tick := time.NewTicker(recordRepeat(a.cfg.MaxStale()))
	defer tick.Stop()
	var latest *node.RootRecord
	connected, stop := context.WithCancel(context.Background())
	stop() // a done context: WaitReady then only says whether the relay is up
	toWorker := func(rec *node.RootRecord) {
		a.mu.Lock()
		port := a.port
		a.mu.Unlock()
		if !port.IsUndefined() {
			post(port, agentproto.Simple(agentproto.TypeRecord, map[string]any{"rec": jsx.Uint8Array(rec.Bytes())}))
		}
	}
	for {
		select {
		case <-a.ctx.Done():
			return
		case rec, ok := <-sub.Records():
			if !ok {
				return
			}
			latest = rec
			a.mu.Lock()
			a.root = rec.Root
			a.mu.Unlock()
			toWorker(rec)
			a.applySeeding()
		case <-tick.C:
			if latest != nil && a.cfg.MaxStale() > 0 && p.Relay.WaitReady(connected) == nil {
				toWorker(latest)
			}
		}
	}
}

// recordRepeat is how often the agent repeats the latest record to the
// worker: well within the freshness bound.
func recordRepeat(maxStale time.Duration) time.Duration {
	return min(max(maxStale/3, 250*time.Millisecond), 2*time.Second)
}

// applySeeding announces or withdraws the tab as the seeding flag says.
func (a *agent) applySeeding() {
	a.mu.Lock()
	p, on, root := a.peer, a.seedOn, a.root
	a.mu.Unlock()
	if p == nil {
		return
	}
	var roots []cid.Cid
	if root.Defined() {
		roots = []cid.Cid{root}
	}
	ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
	defer cancel()
	if err := p.SetServing(ctx, on, roots...); err != nil {
		a.setErr("announcing: " + err.Error())
	}
}

func (a *agent) setPeers(n, conns int) {
	a.mu.Lock()
	changed := n != a.peers || conns != a.conns
	a.peers, a.conns = n, conns
	port := a.port
	a.mu.Unlock()
	if changed && !port.IsUndefined() {
		post(port, statusMsg(n, conns))
	}
}

// statusMsg is the "status" message: the peers known and connected, and
// that this agent reads "want".
func statusMsg(peers, conns int) js.Value {
	return agentproto.Simple(agentproto.TypeStatus, map[string]any{"peers": peers, "connected": conns, "want": true})
}

// post sends a message, ignoring a closed port.
func post(port js.Value, msg js.Value, transfer ...js.Value) {
	_, _ = jsx.Try(func() js.Value {
		if len(transfer) > 0 {
			return port.Call("postMessage", msg, transfer[0])
		}
		return port.Call("postMessage", msg)
	})
}

// api returns the object hearth.js drives.
func (a *agent) api() js.Value {
	return jsx.Object(map[string]any{
		"setPort": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) > 0 {
				a.setPort(args[0])
			}
			return nil
		}),
		"seed": js.FuncOf(func(_ js.Value, args []js.Value) any {
			// The operator's switch (tabSeeding) makes seeding possible;
			// only the visitor's consent, through the loader, turns it on.
			on := len(args) > 0 && args[0].Truthy() && a.cfg.TabSeeding
			a.mu.Lock()
			a.seedOn = on
			a.mu.Unlock()
			go a.applySeeding() // owned by the agent: bounded by a timeout
			return nil
		}),
		"stats": js.FuncOf(func(js.Value, []js.Value) any { return a.stats() }),
		"bye": js.FuncOf(func(js.Value, []js.Value) any {
			a.mu.Lock()
			port := a.port
			a.mu.Unlock()
			if !port.IsUndefined() {
				post(port, agentproto.Simple(agentproto.TypeBye, nil))
			}
			return nil
		}),
	})
}

func (a *agent) stats() js.Value {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := map[string]any{"peers": a.peers, "seeding": a.seedOn, "bytesIn": float64(a.bytesIn.Load()), "error": a.lastErr}
	if a.peer != nil {
		conns := 0
		var banned []any
		for _, fp := range a.peer.Fetcher.Peers() {
			if fp.Connected {
				conns++
			}
			if fp.Banned {
				banned = append(banned, fp.ID)
			}
		}
		m["connected"] = conns
		m["banned"] = banned
		var out int64
		if a.peer.Server != nil {
			for _, s := range a.peer.Server.Stats() {
				out += s.BytesServed
			}
		}
		m["bytesOut"] = float64(out)
		m["relay"] = a.peer.Relay.State().String()
	}
	return jsx.Object(m)
}

// setPort takes the MessagePort to the worker (again after a worker update).
func (a *agent) setPort(port js.Value) {
	a.mu.Lock()
	if !a.port.IsUndefined() {
		a.port.Set("onmessage", js.Null())
		a.onMsg.Release()
	}
	old := a.reqs
	a.reqs = make(map[uint64]*request)
	a.port = port
	a.onMsg = js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) > 0 {
			a.handle(port, args[0].Get("data"))
		}
		return nil
	})
	port.Set("onmessage", a.onMsg)
	n, conns := max(a.peers, 0), a.conns
	a.mu.Unlock()
	for _, r := range old {
		r.cancel()
	}
	post(port, statusMsg(n, conns))
}

// handle processes one message from the worker; called from a JS callback.
func (a *agent) handle(port, m js.Value) {
	if m.Type() != js.TypeObject {
		return
	}
	switch jsx.String(m.Get("t")) {
	case agentproto.TypeWant:
		id, cids, err := agentproto.DecodeWant(m)
		if err != nil {
			postEnd(port, id, err)
			return
		}
		a.admit(port, id, 0, func(ctx context.Context, p *swarm.Peer, r *request) { a.serveWant(ctx, p, r, cids) })
	case agentproto.TypeRequest:
		id, req, credit, err := agentproto.DecodeRequest(m)
		if err != nil {
			postEnd(port, id, err)
			return
		}
		a.admit(port, id, credit, func(ctx context.Context, p *swarm.Peer, r *request) { a.serve(ctx, p, r, req) })
	case agentproto.TypeCredit, agentproto.TypeCancel:
		id := uint64(m.Get("id").Float())
		a.mu.Lock()
		r := a.reqs[id]
		a.mu.Unlock()
		if r == nil {
			return
		}
		if jsx.String(m.Get("t")) == agentproto.TypeCancel {
			r.cancel()
			return
		}
		r.grant(int64(m.Get("n").Int()))
	}
}

// admit starts one of the worker's requests: run serves it in a goroutine
// owned by the request (its cancel ends it). Without a peer connection, or
// with maxRequests in progress, the worker gets an "end" with the reason.
func (a *agent) admit(port js.Value, id uint64, credit int, run func(context.Context, *swarm.Peer, *request)) {
	a.mu.Lock()
	p := a.peer
	busy := len(a.reqs) >= maxRequests
	var r *request
	if p != nil && !busy {
		ctx, cancel := context.WithCancel(a.ctx)
		r = &request{id: id, port: port, cancel: cancel, credit: int64(credit), wake: make(chan struct{}, 1)}
		a.reqs[id] = r
		go func() { // owned by the request: cancel ends it
			defer func() {
				cancel()
				a.mu.Lock()
				if a.reqs[id] == r {
					delete(a.reqs, id)
				}
				a.mu.Unlock()
			}()
			run(ctx, p, r)
		}()
	}
	a.mu.Unlock()
	if r == nil {
		reason := errors.New("agent not connected")
		if busy {
			reason = errors.New("agent busy")
		}
		postEnd(port, id, reason)
	}
}

// request is one of the worker's requests in progress.
type request struct {
	id     uint64
	port   js.Value
	cancel context.CancelFunc
	wake   chan struct{} // capacity 1: credit granted

	mu     sync.Mutex
	credit int64
}

func (r *request) grant(n int64) {
	r.mu.Lock()
	r.credit += n
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// spend waits until there is credit, then takes n bytes of it (the credit
// may go below zero by the last batch, as the protocol allows).
func (r *request) spend(ctx context.Context, n int) error {
	for {
		r.mu.Lock()
		if r.credit > 0 {
			r.credit -= int64(n)
			r.mu.Unlock()
			return nil
		}
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errNoPeer: nobody could be asked.
var errNoPeer = errors.New("no peer")

// postEnd posts request id's "end": a success when err is nil.
func postEnd(port js.Value, id uint64, err error) {
	m := map[string]any{"id": float64(id)}
	if err != nil {
		m["err"] = err.Error()
	}
	post(port, agentproto.Simple(agentproto.TypeEnd, m))
}

// startFetch runs fetch on its own goroutine under a child of ctx. done is
// closed when it returns, after which ferr gives its error; stop cancels
// it and waits.
func startFetch(ctx context.Context, fetch func(context.Context) error) (done <-chan struct{}, ferr func() error, stop func()) {
	fctx, cancel := context.WithCancel(ctx)
	ch := make(chan struct{})
	var err error
	go func() { // owned by the caller: ended and waited for by stop
		defer close(ch)
		err = fetch(fctx)
	}()
	return ch, func() error { return err }, func() { cancel(); <-ch }
}

// pass posts blocks (size bytes of data) to the worker for r, last
// carrying the end, and drops the raw ones from the hub: the worker caches
// them now (the Fetcher may still read interior nodes).
func (a *agent) pass(ctx context.Context, r *request, blocks []node.Block, size int, last bool) {
	msg, tr := agentproto.EncodeBlocks(r.id, blocks, last)
	post(r.port, msg, tr)
	a.bytesIn.Add(int64(size))
	for _, b := range blocks {
		if b.Cid.Type() == node.CodecRaw {
			_ = a.hub.Delete(ctx, b.Cid)
		}
	}
}

// serve answers one request: the Fetcher fetches the blocks from peers
// into the hub (verified, spread over peers), while node.Walk walks them
// in the order the worker expects and passes each batch on as soon as it
// is ready.
func (a *agent) serve(ctx context.Context, p *swarm.Peer, r *request, req node.Request) {
	if p.Fetcher == nil {
		postEnd(r.port, r.id, errNoPeer)
		return
	}
	done, ferr, stop := startFetch(ctx, func(ctx context.Context) error {
		_, err := p.Fetcher.Fetch(ctx, req)
		return err
	})
	defer stop()
	var batch []node.Block
	size := 0
	flush := func(last bool) error {
		if len(batch) == 0 {
			return nil
		}
		if err := r.spend(ctx, size); err != nil {
			return err
		}
		a.pass(ctx, r, batch, size, last)
		batch, size = batch[:0], 0
		return nil
	}
	g := &recentGetter{g: waitingGetter{h: a.hub, done: done, err: ferr,
		beforeWait: func() error { return flush(false) }}}
	_, err := node.Walk(ctx, g, req, func(b node.Block) error {
		batch = append(batch, b)
		size += len(b.Data)
		if size >= batchBytes {
			return flush(false)
		}
		return nil
	})
	last := err == nil && len(batch) > 0
	if err == nil {
		err = flush(true) // the last blocks carry the end
	}
	if ctx.Err() != nil {
		return // cancelled: the worker needs no end
	}
	if err != nil || !last {
		postEnd(r.port, r.id, err)
	}
}

// serveWant answers a "want": the Fetcher fetches the blocks as one list,
// spread over peers (each verified), and each is passed on as soon as it
// is in the hub, whatever the order; the last message says end.
func (a *agent) serveWant(ctx context.Context, p *swarm.Peer, r *request, cids []cid.Cid) {
	if p.Fetcher == nil {
		postEnd(r.port, r.id, errNoPeer)
		return
	}
	done, ferr, stop := startFetch(ctx, func(ctx context.Context) error { return p.Fetcher.FetchBlocks(ctx, cids) })
	defer stop()
	pending := make(map[string]cid.Cid, len(cids))
	for _, c := range cids {
		pending[c.KeyString()] = c
	}
	finished := false
	for len(pending) > 0 {
		arrived := a.hub.waiter()
		var batch []node.Block
		size := 0
		for k, c := range pending {
			if d, err := a.hub.Get(ctx, c); err == nil {
				batch = append(batch, node.Block{Cid: c, Data: d})
				size += len(d)
				delete(pending, k)
			}
		}
		if len(batch) > 0 {
			a.pass(ctx, r, batch, size, len(pending) == 0)
		}
		if len(pending) == 0 || finished {
			break
		}
		select {
		case <-arrived:
		case <-done:
			finished = true // one more look, then end
		case <-ctx.Done():
			return // cancelled: the worker needs no end
		}
	}
	if len(pending) == 0 {
		return
	}
	err := fmt.Errorf("peers did not send %d of %d blocks", len(pending), len(cids))
	if e := ferr(); e != nil {
		err = fmt.Errorf("%w: %w", err, e)
	}
	postEnd(r.port, r.id, err)
}

// failedAPI is the API of an agent that could not start: no peers ever.
func failedAPI(cause error) js.Value {
	nop := js.FuncOf(func(js.Value, []js.Value) any { return nil })
	return jsx.Object(map[string]any{
		"setPort": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) > 0 {
				post(args[0], agentproto.Simple(agentproto.TypeStatus, map[string]any{"peers": 0}))
			}
			return nil
		}),
		"seed": nop, "bye": nop,
		"stats": js.FuncOf(func(js.Value, []js.Value) any {
			return jsx.Object(map[string]any{"error": cause.Error()})
		}),
	})
}

// recentGetter answers repeated reads of the last few blocks itself: a file
// of identical chunks reads one leaf many times, and the hub drops leaves
// once they are passed on.
type recentGetter struct {
	g      node.Getter
	recent [4]node.Block
	next   int
}

func (r *recentGetter) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	for _, b := range r.recent {
		if b.Data != nil && b.Cid.Equals(c) {
			return b.Data, nil
		}
	}
	d, err := r.g.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	r.recent[r.next] = node.Block{Cid: c, Data: d}
	r.next = (r.next + 1) % len(r.recent)
	return d, nil
}
