//go:build !js

package exchange

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

// The origin's gateway client is a Fallback as it is.
var _ Fallback = (*gateway.Fetcher)(nil)

func TestFallbackToGateway(t *testing.T) {
	dir := smallFilesDir(t, 20, 3000)
	data := writeRandomFile(t, filepath.Join(dir, "big.bin"), 3<<20, 11)
	st, root := importDir(t, dir)
	origin := httptest.NewServer(gateway.NewTrustless(st, gateway.TrustlessOptions{Logger: testLogger(t)}))
	t.Cleanup(origin.Close)
	gw, err := gateway.NewFetcher([]string{origin.URL}, gateway.FetcherOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// No peer at all: everything comes from the origin, verified.
	f := newTestFetcher(t, FetcherConfig{Fallback: gw, Finder: staticFinder{}, Dialer: newMemNet(t), RangeSize: 1 << 20})
	ctx := ctxT(t, 30*time.Second)
	if _, err := f.Fetch(ctx, node.Request{Root: root, Scope: node.ScopeAll}); err != nil {
		t.Fatal(err)
	}
	if got := readEntity(t, f.cfg.Store, root, "big.bin"); !bytes.Equal(got, data) {
		t.Fatal("big.bin differs")
	}
	compareTree(t, dir, f.cfg.Store, root)
	// An unknown CID is not found at the origin either.
	_, err = f.Fetch(ctx, node.Request{Root: node.Sum(node.CodecRaw, []byte("absent")), Scope: node.ScopeBlock})
	t.Logf("absent: %v (notfound=%v)", err, errors.Is(err, node.ErrNotFound))
	if !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("err = %v, want node.ErrNotFound", err)
	}
}
