package main

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
	relayclient "github.com/hearthcdn/hearth/relay/client"
	relayserver "github.com/hearthcdn/hearth/relay/server"
)

// TestPushRecords: every record the origin signs reaches the relay's
// subscribers, the one held at start and each new one.
func TestPushRecords(t *testing.T) {
	rs, err := relayserver.New(relayserver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rs.Handler())
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close(); _ = rs.Close() })
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"

	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey))
	feed, err := gateway.NewRecordFeed(site, node.NewRecordLog(node.NewMemMeta()))
	if err != nil {
		t.Fatal(err)
	}
	_, root := harness.BuildDAG(t, map[string][]byte{"a": []byte("a")})
	if _, err := feed.SignNext(key, root, time.Now()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	pctx, stop := context.WithCancel(ctx)
	go func() { done <- pushRecords(pctx, url, feed, nil, slog.New(slog.DiscardHandler)) }()
	defer func() { stop(); <-done }()

	rc, err := relayclient.New(relayclient.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sub, err := rc.Subscribe(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	want := func(seq uint64) {
		t.Helper()
		for {
			select {
			case rec := <-sub.Records():
				if rec.Seq == seq {
					return
				}
			case <-ctx.Done():
				t.Fatalf("record %d never reached the subscriber", seq)
			}
		}
	}
	want(1)
	_, root2 := harness.BuildDAG(t, map[string][]byte{"a": []byte("b")})
	if _, err := feed.SignNext(key, root2, time.Now()); err != nil {
		t.Fatal(err)
	}
	want(2)
}
