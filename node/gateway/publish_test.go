package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/node/importer"
)

func TestPublishEndpoint(t *testing.T) {
	ctx := context.Background()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey))
	originStore := node.NewMemStore()
	feed, err := gateway.NewRecordFeed(site, node.NewRecordLog(node.NewMemMeta()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gateway.NewPublish(feed, originStore, gateway.PublishOptions{MaxBody: 1 << 20}))
	defer srv.Close()

	// The publisher's store holds a new root; it sends the blocks.
	pub := node.NewMemStore()
	root, err := importer.New(pub, importer.Options{}).ImportReader(ctx, bytes.NewReader(bytes.Repeat([]byte("p"), 600_000)))
	if err != nil {
		t.Fatal(err)
	}
	var all []cid.Cid
	for c := range pub.AllKeys(ctx) {
		all = append(all, c)
	}
	log := node.NewRecordLog(node.NewMemMeta())
	rec1, _ := log.SignNext(key, root, time.Now())

	// Missing blocks: refused, record not accepted.
	if err := gateway.PublishRoot(ctx, nil, srv.URL, rec1, pub, all[:1]); err == nil || !strings.Contains(err.Error(), "422") {
		t.Fatalf("incomplete DAG: %v", err)
	}
	if feed.Latest() != nil {
		t.Fatal("record accepted for an incomplete DAG")
	}
	if err := gateway.PublishRoot(ctx, nil, srv.URL, rec1, pub, all); err != nil {
		t.Fatal(err)
	}
	if l := feed.Latest(); l == nil || l.Seq != 1 || !l.Root.Equals(root) {
		t.Fatalf("latest %+v", l)
	}
	// Replayed record: 409.
	if err := gateway.PublishRoot(ctx, nil, srv.URL, rec1, pub, nil); err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("replay: %v", err)
	}
	// Another key: 403.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	forged, _ := node.NewRootRecord(other, 5, root, time.Now())
	if err := gateway.PublishRoot(ctx, nil, srv.URL, forged, pub, nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("other site: %v", err)
	}
	// Over the body limit: 413, nothing accepted.
	big := node.NewMemStore()
	data := make([]byte, 3<<20)
	_, _ = rand.Read(data)
	bigRoot, _ := importer.New(big, importer.Options{}).ImportReader(ctx, bytes.NewReader(data))
	var bigCids []cid.Cid
	for c := range big.AllKeys(ctx) {
		bigCids = append(bigCids, c)
	}
	rec2, _ := log.SignNext(key, bigRoot, time.Now())
	if err := gateway.PublishRoot(ctx, nil, srv.URL, rec2, big, bigCids); err == nil || !strings.Contains(err.Error(), "413") {
		t.Fatalf("oversized: %v", err)
	}
	if feed.Latest().Seq != 1 {
		t.Fatal("oversized publish accepted")
	}
	// No header at all.
	resp, err := http.Post(srv.URL, "application/vnd.ipld.car", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("no record header: %d", resp.StatusCode)
	}
}
