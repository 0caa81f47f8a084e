//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"syscall/js"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/js/jsconfig"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/wasm/internal/agentproto"
	"github.com/hearthcdn/hearth/wasm/internal/jsx"
)

var testSite = node.SiteID{1, 2, 3}.String()

func TestConfigFrom(t *testing.T) {
	obj := jsx.Global().Get("JSON").Call("parse", `{"site":"`+testSite+`","prefixes":["/a/","/b/"],"cacheMiB":10,"agentTimeoutMs":300,"noInject":true}`)
	c, err := configFrom(obj)
	if err != nil {
		t.Fatal(err)
	}
	if c.Scope != "/" || len(c.Prefixes) != 2 || c.CacheMiB != 10 || c.AgentTimeoutMS != 300 || !c.NoInject {
		t.Fatalf("%+v", c)
	}
	if _, err := configFrom(js.Undefined()); err == nil {
		t.Fatal("no config accepted")
	}
}

func TestOurs(t *testing.T) {
	w := &worker{cfg: &jsconfig.Config{Prefixes: []string{"/site/"}}, origin: "http://127.0.0.1:1"}
	for _, tc := range []struct {
		method, origin, path, cache string
		want                        bool
	}{
		{"GET", w.origin, "/site/a.css", "default", true},
		{"HEAD", w.origin, "/site/", "no-cache", true},
		{"POST", w.origin, "/site/a.css", "default", false},
		{"GET", "http://other", "/site/a.css", "default", false},
		{"GET", w.origin, "/site/a.css", "no-store", false},
		{"GET", w.origin, "/other/a.css", "default", false},
		{"GET", w.origin, "/.hearth/sw.js", "default", false},
	} {
		w.cfg.Prefixes = []string{"/site/", "/"}
		if tc.path == "/other/a.css" {
			w.cfg.Prefixes = []string{"/site/"}
		}
		if got := w.ours(tc.method, tc.origin, tc.path, tc.cache); got != tc.want {
			t.Errorf("%+v: %v", tc, got)
		}
	}
}

// answer posts blocks for request id, per to a message, as the agent does:
// the last blocks message carries the end when err is nil; otherwise (or
// with no blocks) an "end" follows, with err's text.
func answer(p js.Value, id uint64, blocks []node.Block, per int, err error) {
	for i := 0; i < len(blocks); i += per {
		last := err == nil && i+per >= len(blocks)
		msg, tr := agentproto.EncodeBlocks(id, blocks[i:min(i+per, len(blocks))], last)
		p.Call("postMessage", msg, tr)
	}
	if err == nil && len(blocks) > 0 {
		return
	}
	end := map[string]any{"id": float64(id)}
	if err != nil {
		end["err"] = err.Error()
	}
	p.Call("postMessage", agentproto.Simple(agentproto.TypeEnd, end))
}

// fakeAgent answers requests on its end of a MessageChannel with the
// blocks of store, or not at all when silent.
func fakeAgent(t *testing.T, store *node.MemStore, silent bool) (port js.Value, credits chan int) {
	credits = make(chan int, 16)
	port = fakePort(t, func(port2, m js.Value) {
		typ := jsx.String(m.Get("t"))
		if silent && typ != agentproto.TypeCredit {
			return
		}
		switch typ {
		case agentproto.TypeCredit:
			select { // never block the JS event loop
			case credits <- m.Get("n").Int():
			default:
			}
		case agentproto.TypeWant:
			id, cids, err := agentproto.DecodeWant(m)
			if err != nil {
				t.Error(err)
				return
			}
			go func() {
				// Answer in reverse order, two blocks a message, as blocks
				// may arrive from peers; a block the store lacks ends the
				// want with an error.
				var blocks []node.Block
				var err error
				for i := len(cids) - 1; i >= 0; i-- {
					if d, gerr := store.Get(context.Background(), cids[i]); gerr == nil {
						blocks = append(blocks, node.Block{Cid: cids[i], Data: d})
					} else {
						err = errors.New("not found")
					}
				}
				answer(port2, id, blocks, 2, err)
			}()
		case agentproto.TypeRequest:
			id, req, _, err := agentproto.DecodeRequest(m)
			if err != nil {
				t.Error(err)
				return
			}
			go func() {
				var blocks []node.Block
				_, err := node.Traverse(context.Background(), store, req, func(b node.Block) error {
					blocks = append(blocks, b)
					return nil
				})
				answer(port2, id, blocks, 1, err)
			}()
		}
	})
	return port, credits
}

// fakePort returns one end of a MessageChannel whose other end (port2)
// hands each message's data to onMsg; closed at cleanup.
func fakePort(t *testing.T, onMsg func(port2, m js.Value)) js.Value {
	ch := jsx.Global().Get("MessageChannel").New()
	port2 := ch.Get("port2")
	fn := js.FuncOf(func(_ js.Value, args []js.Value) any {
		onMsg(port2, args[0].Get("data"))
		return nil
	})
	port2.Set("onmessage", fn)
	t.Cleanup(func() {
		port2.Call("close")
		fn.Release()
	})
	return ch.Get("port1")
}

func TestAgentSource(t *testing.T) {
	store := node.NewMemStore()
	data := make([]byte, 3<<20) // enough block bytes for a credit grant
	for i := range data {
		data[i] = byte(i * 7)
	}
	var leaves []node.Block
	for off := 0; off < len(data); off += node.ChunkSize {
		d := data[off:min(off+node.ChunkSize, len(data))]
		c := node.Sum(node.CodecRaw, d)
		leaves = append(leaves, node.Block{Cid: c, Data: d})
		_ = store.Put(context.Background(), c, d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	a := newAgents(10*time.Second, func([]byte) {})
	port, credits := fakeAgent(t, store, false)
	a.add(port, "client1")
	if a.pick() != nil {
		t.Fatal("an agent without peers was picked")
	}
	a.list[0].handle(agentproto.Simple(agentproto.TypeStatus, map[string]any{"peers": 2}))
	p := a.pick()
	if p == nil {
		t.Fatal("no agent picked")
	}
	got := 0
	for _, leaf := range leaves {
		st, err := p.Open(ctx, node.Request{Root: leaf.Cid, Scope: node.ScopeBlock})
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.Next()
		if err != nil || !b.Cid.Equals(leaf.Cid) {
			t.Fatalf("block: %v %v", b.Cid, err)
		}
		if _, err := st.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the block: %v", err)
		}
		got += len(b.Data)
		st.Close()
	}
	if got != len(data) {
		t.Fatalf("got %d bytes", got)
	}

	// A silent agent misses the deadline and is not asked again until it
	// speaks.
	a.timeout = 200 * time.Millisecond
	silentPort, _ := fakeAgent(t, store, true)
	a.add(silentPort, "client2")
	a.list[len(a.list)-1].handle(agentproto.Simple(agentproto.TypeStatus, map[string]any{"peers": 1}))
	p = a.pick()
	st, err := p.Open(ctx, node.Request{Root: leaves[0].Cid, Scope: node.ScopeBlock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Next(); !errors.Is(err, errAgentTimeout) {
		t.Fatalf("silent agent: %v", err)
	}
	if q := a.pick(); q == p {
		t.Fatal("the silent agent is still picked")
	}
	p.handle(agentproto.Simple(agentproto.TypeStatus, map[string]any{"peers": 1}))
	if q := a.pick(); q != p {
		t.Fatal("the agent is not picked again after it spoke")
	}
	_ = credits
}

// TestAgentPick: the newest agent connected to peers is asked before a
// newer one still connecting; with none connected, the newest that knows
// peers; an agent without peers never.
func TestAgentPick(t *testing.T) {
	store := node.NewMemStore()
	a := newAgents(10*time.Second, func([]byte) {})
	status := func(i int, m map[string]any) { a.list[i].handle(agentproto.Simple(agentproto.TypeStatus, m)) }
	for i := range 3 {
		port, _ := fakeAgent(t, store, false)
		a.add(port, fmt.Sprintf("client%d", i))
	}
	if a.pick() != nil {
		t.Fatal("an agent without peers was picked")
	}
	status(0, map[string]any{"peers": 2, "connected": 1, "want": true})
	status(1, map[string]any{"peers": 2, "connected": 0, "want": true})
	status(2, map[string]any{"peers": 0, "connected": 0, "want": true})
	if p := a.pick(); p != a.list[0] {
		t.Fatal("the connected agent was not picked")
	}
	status(0, map[string]any{"peers": 2, "connected": 0, "want": true})
	if p := a.pick(); p != a.list[1] {
		t.Fatal("with none connected, the newest agent that knows peers was not picked")
	}
	status(1, map[string]any{"peers": 2, "connected": 2, "want": true})
	status(0, map[string]any{"peers": 2, "connected": 1, "want": true})
	if p := a.pick(); p != a.list[1] {
		t.Fatal("of two connected agents, the newer was not picked")
	}
	// An agent that says nothing of connections (an older build) counts
	// as not connected.
	status(0, map[string]any{"peers": 2})
	status(1, map[string]any{"peers": 2})
	if p := a.pick(); p != a.list[1] {
		t.Fatal("without connection counts, the newest agent with peers was not picked")
	}
}

// TestAgentUnwant: a wanted block not yet asked for, whose only stream
// closes, is dropped from the next want.
func TestAgentUnwant(t *testing.T) {
	store := node.NewMemStore()
	blk := func(s string) node.Block {
		d := []byte(s)
		c := node.Sum(node.CodecRaw, d)
		_ = store.Put(context.Background(), c, d)
		return node.Block{Cid: c, Data: d}
	}
	a, b := blk("a"), blk("b")
	ag := newAgents(5*time.Second, func([]byte) {})
	port, _ := fakeAgent(t, store, true) // silent: wants stay in flight
	ag.add(port, "client1")
	ag.list[0].handle(agentproto.Simple(agentproto.TypeStatus, map[string]any{"peers": 1, "want": true}))
	p := ag.pick()
	ctx := context.Background()
	sa, err := p.Open(ctx, node.Request{Root: a.Cid, Scope: node.ScopeEntity})
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	// Every want slot taken: b waits, unasked.
	p.mu.Lock()
	for i := range wantsOut {
		p.wants[uint64(1000+i)] = nil
	}
	p.mu.Unlock()
	sb, err := p.Open(ctx, node.Request{Root: b.Cid, Scope: node.ScopeEntity})
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	n := len(p.unasked)
	p.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d blocks unasked, want b", n)
	}
	sb.Close()
	p.mu.Lock()
	n = len(p.unasked)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d blocks still to be asked for after their only stream closed", n)
	}
}

// TestAgentWants: single raw blocks asked for at once go to the agent in a
// few "want" messages; each stream gets its block whatever the order they
// come in, streams for the same block share it, and a block the agent does
// not send fails its stream only.
func TestAgentWants(t *testing.T) {
	store := node.NewMemStore()
	var leaves []node.Block
	for i := range 100 {
		d := []byte(fmt.Sprintf("leaf %d", i))
		c := node.Sum(node.CodecRaw, d)
		leaves = append(leaves, node.Block{Cid: c, Data: d})
		if i != 7 { // the agent lacks leaf 7
			_ = store.Put(context.Background(), c, d)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := newAgents(5*time.Second, func([]byte) {})
	port, _ := fakeAgent(t, store, false)
	a.add(port, "client1")
	a.list[0].handle(agentproto.Simple(agentproto.TypeStatus, map[string]any{"peers": 1, "want": true}))
	p := a.pick()
	type result struct {
		i   int
		err error
	}
	results := make(chan result, 2*len(leaves))
	for i, leaf := range append(leaves, leaves[:20]...) { // 20 asked twice
		go func() {
			st, err := p.Open(ctx, node.Request{Root: leaf.Cid, Scope: node.ScopeEntity})
			if err != nil {
				results <- result{i, err}
				return
			}
			defer st.Close()
			b, err := st.Next()
			if err == nil && !bytes.Equal(b.Data, leaf.Data) {
				err = fmt.Errorf("wrong bytes")
			}
			if err == nil {
				if _, err = st.Next(); errors.Is(err, io.EOF) {
					err = nil
				}
			}
			results <- result{i % len(leaves), err}
		}()
	}
	for range len(leaves) + 20 {
		r := <-results
		if (r.err != nil) != (r.i == 7) {
			t.Errorf("leaf %d: %v", r.i, r.err)
		}
	}
	p.mu.Lock()
	left, wants := len(p.waiting), len(p.wants)
	p.mu.Unlock()
	if left != 0 || wants != 0 {
		t.Errorf("%d blocks still awaited, %d wants open", left, wants)
	}
	if n := a.nextID.Load(); n > 20 { // each "want" takes an id
		t.Errorf("%d wants for 100 blocks: not coalesced", n)
	}
}

// TestAgentWantsSilent: when a silent agent misses a wanted block's
// deadline, every block wanted from it fails at once, including those not
// yet asked for, so all go to the next source.
func TestAgentWantsSilent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := newAgents(200*time.Millisecond, func([]byte) {})
	port, _ := fakeAgent(t, node.NewMemStore(), true)
	a.add(port, "client1")
	a.list[0].handle(agentproto.Simple(agentproto.TypeStatus, map[string]any{"peers": 1, "want": true}))
	p := a.pick()
	n := wantsOut*wantMax + 20 // some are never asked for
	errs := make(chan error, n)
	for i := range n {
		go func() {
			st, err := p.Open(ctx, node.Request{Root: node.Sum(node.CodecRaw, []byte(fmt.Sprint(i))), Scope: node.ScopeEntity})
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			_, err = st.Next()
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; !errors.Is(err, errAgentTimeout) {
			t.Fatalf("got %v, want the agent timeout", err)
		}
	}
	if ctx.Err() != nil {
		t.Fatal("the streams waited for the test's deadline")
	}
}

// TestAgentWantsSlow: an agent that delivers wanted blocks one by one,
// slower in all than the deadline but never silent for as long, gets
// every one through.
func TestAgentWantsSlow(t *testing.T) {
	port := fakePort(t, func(port2, m js.Value) {
		if jsx.String(m.Get("t")) != agentproto.TypeWant {
			return
		}
		id, cids, err := agentproto.DecodeWant(m)
		if err != nil {
			t.Error(err)
			return
		}
		go func() {
			for i, c := range cids {
				time.Sleep(60 * time.Millisecond)
				msg, tr := agentproto.EncodeBlocks(id, []node.Block{{Cid: c, Data: []byte(c.String())}}, i == len(cids)-1)
				port2.Call("postMessage", msg, tr)
			}
		}()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := newAgents(300*time.Millisecond, func([]byte) {})
	a.add(port, "client1")
	a.list[0].handle(agentproto.Simple(agentproto.TypeStatus, map[string]any{"peers": 1, "want": true}))
	p := a.pick()
	errs := make(chan error, 30)
	for i := range 30 { // 30 × 60 ms: six times the deadline
		go func() {
			// The blocks' bytes are their CID's text: these are not real
			// CIDs of those bytes; the stream does not verify, serve does.
			st, err := p.Open(ctx, node.Request{Root: node.Sum(node.CodecRaw, []byte(fmt.Sprint(i))), Scope: node.ScopeEntity})
			if err == nil {
				_, err = st.Next()
				st.Close()
			}
			errs <- err
		}()
	}
	for range 30 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestRequestRoundTrip(t *testing.T) {
	c := node.Sum(node.CodecRaw, []byte("x"))
	for _, req := range []node.Request{
		{Root: c, Path: []string{"a", "b c"}, Scope: node.ScopeEntity, Bytes: &node.ByteRange{From: 5, To: 99}},
		{Root: c, Scope: node.ScopeAll},
		{Root: c, Scope: node.ScopeEntity, Bytes: &node.ByteRange{From: -10, ToEnd: true}},
	} {
		id, got, credit, err := agentproto.DecodeRequest(agentproto.EncodeRequest(7, req, 1234))
		if err != nil || id != 7 || credit != 1234 || !got.Root.Equals(req.Root) || got.Scope != req.Scope ||
			len(got.Path) != len(req.Path) || (req.Bytes == nil) != (got.Bytes == nil) || req.Bytes != nil && *req.Bytes != *got.Bytes {
			t.Fatalf("round trip of %+v: %+v %v", req, got, err)
		}
	}
}

// TestReportJSON: a report is JSON that JavaScript parses back to the same
// values, whatever its strings hold.
func TestReportJSON(t *testing.T) {
	r := statsReport{URL: "https://x/a\"b\\c\n\x01é\xff", Cache: 1, Peer: 1 << 40, Origin: 3, PeerFailures: 4,
		OriginFailures: 5, SourceError: "bad\tblock", Passthrough: true, RecordMs: 1.5, DoneMs: 0.001}
	v, err := jsx.Try(func() js.Value { return jsx.Global().Get("JSON").Call("parse", string(r.appendJSON(nil))) })
	if err != nil {
		t.Fatalf("%s: %v", r.appendJSON(nil), err)
	}
	if got := v.Get("url").String(); got != "https://x/a\"b\\c\n\x01é\uFFFD" {
		t.Errorf("url %q", got)
	}
	if v.Get("peer").Float() != 1<<40 || v.Get("originFailures").Int() != 5 || !v.Get("passthrough").Bool() ||
		v.Get("sourceError").String() != "bad\tblock" || !v.Get("error").IsUndefined() || v.Get("doneMs").Float() != 0.001 {
		t.Errorf("parsed %s", jsx.Global().Get("JSON").Call("stringify", v).String())
	}
}
