//go:build !js

package swarm

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
	relayserver "github.com/hearthcdn/hearth/relay/server"
)

func startRelay(t *testing.T) string {
	t.Helper()
	rs, err := relayserver.New(relayserver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rs.Handler())
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		_ = rs.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

func TestFetchFromSeeder(t *testing.T) {
	big := make([]byte, 700<<10)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	store, root := harness.BuildDAG(t, map[string][]byte{"a/big.bin": big, "index.html": []byte("hi")})
	relayURL := startRelay(t)
	site := harness.NewKey(t).Site
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	seeder, err := Start(Config{RelayURL: relayURL, Site: site, Serve: store, Role: relay.RoleSeeder, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer seeder.Close()
	if err := seeder.SetServing(ctx, true, root); err != nil {
		t.Fatal(err)
	}
	got := node.NewMemStore()
	fetcher, err := Start(Config{RelayURL: relayURL, Site: site, Store: got, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fetcher.Close()
	if err := fetcher.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	peers, err := fetcher.Find(ctx, 4)
	if err != nil || len(peers) != 1 || peers[0] != seeder.ID() {
		t.Fatalf("find: %v %v, want [%s]", peers, err, seeder.ID())
	}
	if _, err := fetcher.Fetcher.Fetch(ctx, node.Request{Root: root, Path: []string{"a", "big.bin"}, Scope: node.ScopeEntity}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Resolve(ctx, got, root, []string{"a", "big.bin"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := node.WriteFile(ctx, got, n, 0, n.FileSize, &buf); err != nil || !bytes.Equal(buf.Bytes(), big) {
		t.Fatalf("fetched file differs: %v", err)
	}
	// Serving off: offers are refused.
	if err := seeder.SetServing(ctx, false); err != nil {
		t.Fatal(err)
	}
}
