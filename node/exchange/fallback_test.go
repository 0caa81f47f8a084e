//go:build !js

package exchange

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

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

	// A peer that never answers: the fallback after FallbackAfter.
	net := newMemNet(t)
	mute := newTestServer(t, st, ServerConfig{})
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	mute.setSendHook(func(_ string, b node.Block) node.Block { <-block; return b })
	net.add("mute", mute)
	fb.calls.Store(0)
	f2 := newTestFetcher(t, FetcherConfig{Fallback: fb.fallback(), Finder: staticFinder{"mute"}, Dialer: net, FallbackAfter: 100 * time.Millisecond})
	start := time.Now()
	if _, err := f2.Fetch(ctxT(t, 10*time.Second), node.Request{Root: root, Path: []string{"f.bin"}, Scope: node.ScopeEntity}); err != nil {
		t.Fatal(err)
	}
	if fb.calls.Load() == 0 {
		t.Fatal("fallback not used")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	if got := readEntity(t, f2.cfg.Store, root, "f.bin"); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
}
