//go:build !js

package gateway_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// fixtureFiles is the test site: small files, a multi-leaf file, a file
// whose leaves repeat (duplicate blocks in the DAG), nested directories.
func fixtureFiles() map[string][]byte {
	return map[string][]byte{
		"index.html":        []byte("<!doctype html><title>home</title><p>hello"),
		"a/b.txt":           []byte("bee\n"),
		"a/c/index.html":    []byte("<!doctype html><p>c"),
		"big.bin":           randBytes(1, 4*node.ChunkSize+12345),
		"dup.bin":           bytes.Repeat([]byte{7}, 3*node.ChunkSize),
		"noext":             append([]byte("\x89PNG\r\n\x1a\n"), randBytes(2, 100)...),
		"empty.txt":         nil,
		"style/site.css":    []byte("body{color:red}"),
		"deep/x/y/z/w.json": []byte(`{"k":1}`),
	}
}

type fixture struct {
	files map[string][]byte
	store *node.MemStore
	root  cid.Cid
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	files := fixtureFiles()
	ms, root := harness.BuildDAG(t, files)
	return &fixture{files: files, store: ms, root: root}
}

// resolve returns the CID at path under the fixture's root.
func (f *fixture) resolve(t testing.TB, p string) cid.Cid {
	t.Helper()
	segs, err := node.SplitPath(p)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Resolve(context.Background(), f.store, f.root, segs)
	if err != nil {
		t.Fatal(err)
	}
	return n.Cid
}

// counting wraps h and counts requests.
type counting struct {
	h http.Handler
	n atomic.Int64
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.h.ServeHTTP(w, r)
}

// serveStore starts a trustless gateway over g and returns its server and request counter.
func serveStore(t testing.TB, g node.Getter) (*httptest.Server, *counting) {
	t.Helper()
	c := &counting{h: gateway.NewTrustless(g, gateway.TrustlessOptions{})}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv, c
}

func newServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
