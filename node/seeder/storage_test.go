package seeder_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http/httptest"
	"testing"
	"time"

	ft "github.com/ipfs/boxo/ipld/unixfs"
	cid "github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/node/seeder"
)

// lyingDir stores in ms a directory of n raw-leaf files of size random
// bytes each whose links claim a Tsize of 1, and returns its CID.
func lyingDir(t *testing.T, ms *node.MemStore, n, size int) cid.Cid {
	t.Helper()
	dir := ft.EmptyDirNode()
	dir.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256})
	for i := range n {
		data := make([]byte, size)
		rand.Read(data)
		h, err := mh.Sum(data, mh.SHA2_256, -1)
		if err != nil {
			t.Fatal(err)
		}
		c := cid.NewCidV1(cid.Raw, h)
		if err := ms.Put(context.Background(), c, data); err != nil {
			t.Fatal(err)
		}
		if err := dir.AddRawLink(string(rune('a'+i)), &ipld.Link{Size: 1, Cid: c}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ms.Put(context.Background(), dir.Cid(), dir.RawData()); err != nil {
		t.Fatal(err)
	}
	return dir.Cid()
}

// Roots whose links understate their sizes (Tsize 1 for 150 KiB leaves)
// are priced by the bytes they occupy: against a 400 KiB limit, each new
// 300 KiB root replaces the last instead of all three being kept, and a
// 450 KiB one is refused.
func TestSeederPricesRootsByStoredBytes(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey))
	src := node.NewMemStore()
	srv := httptest.NewServer(gateway.NewTrustless(src, gateway.TrustlessOptions{}))
	t.Cleanup(srv.Close)
	s := startSeeder(t, site, srv.URL, func(c *seeder.Config) { c.MaxStorage = 400 << 10; c.Keep = 3 })
	log := node.NewRecordLog(node.NewMemMeta())
	publish := func(root cid.Cid) uint64 {
		rec, err := log.SignNext(key, root, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Offer(rec.Bytes(), "test"); err != nil {
			t.Fatal(err)
		}
		return rec.Seq
	}
	for i := range 3 {
		seq := publish(lyingDir(t, src, 2, 150<<10))
		s.waitPinned(t, seq) // the older 300 KiB root no longer fits beside it
		if i == 0 {
			continue
		}
		for _, p := range s.Pins() {
			if p.Bytes < 300<<10 {
				t.Fatalf("pin %d priced at %d bytes, holds over %d", p.Seq, p.Bytes, 300<<10)
			}
		}
	}
	seq := publish(lyingDir(t, src, 3, 150<<10))
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		return value(s.m.RootsRefused) == 1, "450 KiB root claiming 3 bytes not refused"
	})
	if got := s.Pins(); len(got) != 1 || got[0].Seq != seq-1 {
		t.Fatalf("pins %v after refusing seq %d", got, seq)
	}
}
