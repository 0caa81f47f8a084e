package exchange

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/node"
)

// TestServerEvictsIdle: with MaxPeers taken, a new peer takes the place of
// the connection idle longest; a connection with a request in progress is
// never closed for it, and with none idle the new peer is refused.
func TestServerEvictsIdle(t *testing.T) {
	dir := smallFilesDir(t, 4, 500)
	st, root := importDir(t, dir)
	clk := newFakeClock()
	const idleEvict = 15 * time.Second
	srv := newTestServer(t, st, ServerConfig{MaxPeers: 2, IdleEvict: idleEvict, Clock: clk})
	gate := make(chan struct{})
	var held, blocked atomic.Bool
	srv.setSendHook(func(_ string, b node.Block) node.Block {
		if held.CompareAndSwap(true, false) { // the one send that hangs
			blocked.Store(true)
			<-gate
		}
		return b
	})
	net := newMemNet(t)
	net.add("s", srv)
	fetch := func() *Fetcher {
		f := newTestFetcher(t, FetcherConfig{Dialer: net, Finder: staticFinder{"s"}})
		if _, err := f.Fetch(ctxT(t, 5*time.Second), node.Request{Root: root, Scope: node.ScopeAll}); err != nil {
			t.Fatal(err)
		}
		return f
	}
	connected := func(f *Fetcher) bool {
		ps := f.Peers()
		return len(ps) == 1 && ps[0].Connected
	}
	idle := fetch() // will sit idle
	busy := fetch()
	// busy's next request hangs in the send hook: in progress.
	held.Store(true)
	t.Cleanup(func() { close(gate) })
	go func() {
		_, _ = busy.Fetch(ctxT(t, 5*time.Second), node.Request{Root: root, Scope: node.ScopeAll, Path: []string{"f0"}})
	}()
	waitFor(t, "busy's request reached the server", blocked.Load)

	// Both slots taken, and neither idle long enough yet: refused.
	clk.advance(idleEvict - time.Millisecond)
	if err := srv.Admit("early"); !errors.Is(err, ErrRefused) {
		t.Fatalf("admit with no connection idle long enough: %v", err)
	}
	clk.advance(time.Millisecond)
	// An admission that never opens gives its reserved connection back.
	if err := srv.Admit("offer"); err != nil {
		t.Fatalf("admit with an idle connection: %v", err)
	}
	srv.Release("offer")
	if srv.Evicted() != 0 || !connected(idle) {
		t.Fatalf("an offer that never opened closed a connection (%d evicted)", srv.Evicted())
	}
	// A newcomer that connects takes the idle one's place.
	fetch()
	if srv.Evicted() != 1 {
		t.Fatalf("%d evicted, want 1", srv.Evicted())
	}
	waitFor(t, "the idle connection closed", func() bool { return !connected(idle) })
	if !connected(busy) {
		t.Fatal("the connection with a request in progress was closed")
	}
	// With only busy connections (the newcomer's is busy with nothing yet,
	// but not idle for long), the next peer is refused; a busy one is
	// never taken, however long its request.
	clk.advance(idleEvict - time.Millisecond)
	if err := srv.Admit("another"); !errors.Is(err, ErrRefused) {
		t.Fatalf("admit with no connection idle long enough: %v", err)
	}
	if !connected(busy) {
		t.Fatal("the connection with a request in progress was reserved")
	}
}
