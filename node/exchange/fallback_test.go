//go:build !js

package exchange

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// Native only: node.CARWriter is (the browser only reads CARs).

// storeFallback serves CARs from a store, as the origin's gateway would;
// CARStream verifies them.
type storeFallback struct {
	st    node.Getter
	calls atomic.Int64
}

func (s *storeFallback) fallback() Fallback {
	return CARStream(func(ctx context.Context, req node.Request) (io.ReadCloser, error) {
		s.calls.Add(1)
		var buf bytes.Buffer
		cw, err := node.NewCARWriter(&buf, req.Root)
		if err != nil {
			return nil, err
		}
		if _, err := node.Traverse(ctx, s.st, req, func(b node.Block) error { return cw.Put(ctx, b) }); err != nil {
			return nil, err
		}
		return io.NopCloser(&buf), nil
	})
}

func TestFallback(t *testing.T) {
	dir := t.TempDir()
	data := writeRandomFile(t, filepath.Join(dir, "f.bin"), 2<<20, 4)
	st, root := importDir(t, dir)
	fb := &storeFallback{st: st}

	// No peers at all: straight to the fallback.
	f := newTestFetcher(t, FetcherConfig{Fallback: fb.fallback(), Finder: staticFinder{}, Dialer: newMemNet(t)})
	if _, err := f.Fetch(ctxT(t, 10*time.Second), node.Request{Root: root, Path: []string{"f.bin"}, Scope: node.ScopeEntity}); err != nil {
		t.Fatal(err)
	}
	if got := readEntity(t, f.cfg.Store, root, "f.bin"); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}

	// A peer that never answers: the fallback once FallbackAfter passes
	// on the clock, not before.
	net := newMemNet(t)
	mute := newTestServer(t, st, ServerConfig{})
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	var asked atomic.Bool
	mute.setSendHook(func(_ string, b node.Block) node.Block {
		if asked.CompareAndSwap(false, true) { // the head request hangs
			<-block
		}
		return b
	})
	net.add("mute", mute)
	fb.calls.Store(0)
	clk := newFakeClock()
	f2 := newTestFetcher(t, FetcherConfig{Fallback: fb.fallback(), Finder: staticFinder{"mute"}, Dialer: net, FallbackAfter: 2 * time.Second, Clock: clk})
	done := make(chan error, 1)
	go func() {
		_, err := f2.Fetch(ctxT(t, 10*time.Second), node.Request{Root: root, Path: []string{"f.bin"}, Scope: node.ScopeEntity})
		done <- err
	}()
	waitFor(t, "the peer was asked", asked.Load)
	clk.advance(1999 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("ended before FallbackAfter: %v", err)
	default:
	}
	if fb.calls.Load() != 0 {
		t.Fatal("fallback used before FallbackAfter")
	}
	clk.advance(time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fb.calls.Load() == 0 {
		t.Fatal("fallback not used")
	}
	if got := readEntity(t, f2.cfg.Store, root, "f.bin"); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
}

// gatedConn holds every message but SETTINGS until gate closes, and tells
// reached when the first one is held.
type gatedConn struct {
	Conn
	gate    chan struct{}
	reached chan struct{}
	once    sync.Once
}

func (g *gatedConn) WriteMessage(ctx context.Context, b []byte) error {
	if len(b) > 0 && msgType(b[0]) != msgSettings {
		g.once.Do(func() { close(g.reached) })
		select {
		case <-g.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Conn.WriteMessage(ctx, b)
}

// TestFallbackDuringMissing: FallbackAfter passes while a peer is asked
// for a list of blocks, then the peer answers that it has none of them.
// The fallback, started with the full list, reads it while the request
// narrows it to the missing blocks (a data race under -race when both
// shared one list); every block arrives.
func TestFallbackDuringMissing(t *testing.T) {
	dir := t.TempDir()
	writeRandomFile(t, filepath.Join(dir, "f.bin"), 1<<20, 5)
	st, root := importDir(t, dir)
	var all []cid.Cid
	for c, err := range st.AllKeys(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, c)
	}
	fb := &storeFallback{st: st}
	net := newMemNet(t)
	g := &gatedConn{gate: make(chan struct{}), reached: make(chan struct{})}
	gateOnce := sync.OnceFunc(func() { close(g.gate) })
	t.Cleanup(gateOnce)
	net.addWrapped("empty", newTestServer(t, node.NewMemStore(), ServerConfig{}), func(c Conn) Conn { g.Conn = c; return g })
	clk := newFakeClock()
	f := newTestFetcher(t, FetcherConfig{Fallback: fb.fallback(), Finder: staticFinder{"empty"}, Dialer: net, FallbackAfter: 2 * time.Second, StallTimeout: 7 * time.Second, Clock: clk})
	done := make(chan error, 1)
	go func() { done <- f.FetchBlocks(ctxT(t, 10*time.Second), all) }()
	select {
	case <-g.reached:
	case err := <-done:
		t.Fatalf("ended before the peer answered: %v", err)
	}
	// Set: the job's hedging tick, the request's FallbackAfter and the
	// answer's stall timer; the wait for a peer has ended.
	waitFor(t, "the request waits for its answer", func() bool {
		d := clk.due()
		return len(d) == 3 && d[0] == hedgeTick && d[1] == 2*time.Second && d[2] == 7*time.Second
	})
	waitReceived(t, clk.advance(2*time.Second)) // the fallback starts
	gateOnce()                                  // then the peer's MISSING comes
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fb.calls.Load() == 0 {
		t.Fatal("fallback not used")
	}
	compareTree(t, dir, f.cfg.Store, root)
}
