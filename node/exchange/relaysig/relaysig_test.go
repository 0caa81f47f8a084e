//go:build !js

package relaysig

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/exchange"
	"github.com/hearthcdn/hearth/node/importer"
	"github.com/hearthcdn/hearth/relay"
	relayclient "github.com/hearthcdn/hearth/relay/client"
	relayserver "github.com/hearthcdn/hearth/relay/server"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// peer is a relay client with a Transport, its signals pumped by Run.
type peer struct {
	rc  *relayclient.Client
	sig *Relay
	tr  *exchange.Transport
}

func newPeer(t *testing.T, url string, h exchange.Handler) *peer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := relayclient.New(relayclient.Config{URL: url, Key: key, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rc.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	sig := New(rc, quiet())
	tr, err := exchange.NewTransport(exchange.TransportConfig{Signaler: sig, Handler: h, LoopbackOnly: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = sig.Run(runCtx, tr)
	}()
	t.Cleanup(func() {
		stop()
		wg.Wait()
		_ = tr.Close()
		_ = rc.Close()
	})
	return &peer{rc: rc, sig: sig, tr: tr}
}

func TestThroughRelay(t *testing.T) {
	// The content: a small tree with a multi-block file.
	dir := t.TempDir()
	want := bytes.Repeat([]byte("hearth "), 200_000) // 1.4 MB: six leaves
	for name, data := range map[string][]byte{"index.html": []byte("<h1>hi</h1>"), "a/big.txt": want} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := node.NewMemStore()
	root, err := importer.New(st, importer.Options{}).ImportPath(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	sitePub, _, _ := ed25519.GenerateKey(nil)
	site := node.SiteIDOf(sitePub)

	// A real relay on 127.0.0.1.
	rs, err := relayserver.New(relayserver.Config{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(rs.Handler())
	t.Cleanup(func() { hs.Close(); _ = rs.Close() })
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"

	srv, err := exchange.NewServer(exchange.ServerConfig{Store: st, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	seeder := newPeer(t, url, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = seeder.rc.Announce(ctx, relayclient.Announcement{Role: relay.RoleSeeder, Capacity: 32,
		Sites: []relayclient.SiteRoots{{Site: site, Roots: []cid.Cid{root}}}})
	if err != nil {
		t.Fatal(err)
	}

	client := newPeer(t, url, nil)
	f, err := exchange.NewFetcher(exchange.FetcherConfig{Site: site.String(), Store: node.NewMemStore(), Dialer: client.tr, Finder: client.sig, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })

	start := time.Now()
	res, err := f.Fetch(ctx, node.Request{Root: root, Path: []string{"index.html"}, Scope: node.ScopeEntity})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("find → first verified byte through the relay: %v", time.Since(start))
	if res.End != uint64(len("<h1>hi</h1>")) {
		t.Fatalf("result %+v", res)
	}
	if _, err := f.Fetch(ctx, node.Request{Root: root, Scope: node.ScopeAll}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Resolve(ctx, f, root, []string{"a", "big.txt"})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := node.WriteFile(ctx, f, n, 0, n.FileSize, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatal("big.txt differs")
	}
	ps := f.Peers()
	if len(ps) != 1 || ps[0].ID != seeder.rc.ID().String() || !ps[0].Connected {
		t.Fatalf("peers %+v, want the seeder %s", ps, seeder.rc.ID())
	}
	if st := srv.Stats(); len(st) != 1 || st[0].Peer != client.rc.ID().String() || st[0].BytesServed < int64(len(want)) {
		t.Fatalf("server stats %+v", st)
	}
}
