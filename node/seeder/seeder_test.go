package seeder_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/node/hosting"
	"github.com/hearthcdn/hearth/node/origin"
	"github.com/hearthcdn/hearth/node/pebblestore"
	"github.com/hearthcdn/hearth/node/seeder"
)

type memStore struct {
	*node.MemStore
	*node.MemMeta
}

type testOrigin struct {
	*origin.Origin
	dir   string
	store memStore
	srv   *httptest.Server
}

func startOrigin(t *testing.T, files map[string][]byte) *testOrigin {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	harness.WriteTree(t, dir, files)
	st := memStore{node.NewMemStore(), node.NewMemMeta()}
	o, err := origin.New(origin.Config{Store: st, Key: key, Source: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.Publish(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(o.Handler())
	t.Cleanup(func() { o.Close(); srv.Close() })
	return &testOrigin{Origin: o, dir: dir, store: st, srv: srv}
}

func (o *testOrigin) republish(t *testing.T, files map[string][]byte) *node.RootRecord {
	t.Helper()
	harness.WriteTree(t, o.dir, files)
	r, isNew, err := o.Publish(context.Background())
	if err != nil || !isNew {
		t.Fatalf("republish: %v %v", isNew, err)
	}
	return r
}

type testSeeder struct {
	*seeder.Seeder
	store *pebblestore.Store
	m     *hosting.Metrics
	srv   *httptest.Server
}

// startSeeder runs a seeder over a pebble store until the test ends.
func startSeeder(t *testing.T, site node.SiteID, originURL string, mod func(*seeder.Config)) *testSeeder {
	t.Helper()
	st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := hosting.NewMetrics()
	cfg := seeder.Config{Site: site, Origin: originURL, Store: st, Metrics: m, PollInterval: time.Hour, Concurrency: 4}
	if mod != nil {
		mod(&cfg)
	}
	s, err := seeder.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		s.Close()
		srv.Close()
		cancel()
		wg.Wait()
		st.Close()
	})
	return &testSeeder{Seeder: s, store: st, m: m, srv: srv}
}

func (s *testSeeder) waitPinned(t *testing.T, seqs ...uint64) {
	t.Helper()
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		var got []uint64
		for _, p := range s.Pins() {
			got = append(got, p.Seq)
		}
		return fmt.Sprint(got) == fmt.Sprint(seqs), fmt.Sprintf("pins %v, want %v", got, seqs)
	})
}

func blocksOf(t *testing.T, g node.Getter, root cid.Cid) map[string]node.Block {
	return harness.DAGBlocks(t, g, root)
}

// storeKeys returns the keys of every block in st.
func storeKeys(t *testing.T, st node.Blockstore) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for c, err := range st.AllKeys(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		out[c.KeyString()] = true
	}
	return out
}

func siteFiles(v string) map[string][]byte {
	return map[string][]byte{
		"index.html":  []byte("<p>home " + v),
		"same.txt":    []byte("unchanged"),
		"sub/v.txt":   []byte("version " + v),
		"sub/big.bin": bytes.Repeat([]byte(v), 300<<10), // two leaves, each version's own
	}
}

func TestSeederFollowsPinsAndCollects(t *testing.T) {
	o := startOrigin(t, siteFiles("1"))
	s := startSeeder(t, o.Site(), o.srv.URL, func(c *seeder.Config) { c.Keep = 2 })
	s.waitPinned(t, 1)
	r1 := o.Feed().Latest()

	// A new record arrives by the event stream (polling is off) in well under a second.
	r2 := o.republish(t, siteFiles("2"))
	start := time.Now()
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		return s.Feed().Latest().Seq == 2, "seeder has not heard of seq 2"
	})
	if d := time.Since(start); d > time.Second {
		t.Errorf("seq 2 reached the seeder after %s", d)
	}
	s.waitPinned(t, 2, 1)
	r3 := o.republish(t, siteFiles("3"))
	s.waitPinned(t, 3, 2)

	// The store holds exactly the blocks of the two kept roots, identical to the origin's.
	want := blocksOf(t, o.store, r3.Root)
	for k, b := range blocksOf(t, o.store, r2.Root) {
		want[k] = b
	}
	// Garbage collection follows the pin.
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		have := storeKeys(t, s.store)
		for k := range want {
			delete(have, k)
		}
		return len(have) == 0, fmt.Sprintf("%d blocks of unpinned roots remain", len(have))
	})
	for _, b := range want {
		d, err := s.store.Get(context.Background(), b.Cid)
		if err != nil || !bytes.Equal(d, b.Data) {
			t.Fatalf("block %s: %v", b.Cid, err)
		}
	}
	if _, err := s.store.Get(context.Background(), r1.Root); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("root 1 still stored: %v", err)
	}
	// The pins are in the store's metadata, and so is the revision log.
	n := 0
	for range s.store.MetaPrefix("pin/" + o.Site().String() + "/") {
		n++
	}
	if n != 2 {
		t.Errorf("%d pin entries in metadata", n)
	}
	if h := s.Feed().History(); len(h) != 3 {
		t.Errorf("history of %d records", len(h))
	}
	if v := value(s.m.PinnedSeq); v != 3 {
		t.Errorf("pinned sequence metric %v", v)
	}
	// The metric is counted once the collection that emptied the store returns.
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		return value(s.m.GCDeleted) > 0, "no garbage collected"
	})

	// The seeder serves the site, its records and the gateway like the origin.
	resp, err := http.Get(s.srv.URL + "/sub/v.txt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Etag") == "" {
		t.Fatalf("site file: %d", resp.StatusCode)
	}
	if r, err := gateway.FetchRecord(context.Background(), nil, s.srv.URL, o.Site()); err != nil || r.Seq != 3 {
		t.Fatalf("record from the seeder: %v", err)
	}
}

func TestSeederRefusesRootOverMaxStorage(t *testing.T) {
	o := startOrigin(t, siteFiles("1"))
	s := startSeeder(t, o.Site(), o.srv.URL, func(c *seeder.Config) { c.MaxStorage = 200 << 10; c.Concurrency = 1 })
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		return value(s.m.RootsRefused) == 1, "root not refused"
	})
	if len(s.Pins()) != 0 {
		t.Fatal("refused root pinned")
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 503 || !bytes.Contains(rec.Body.Bytes(), []byte(`"refused_seq":1`)) ||
		!bytes.Contains(rec.Body.Bytes(), []byte("exceeds the storage limit")) {
		t.Fatalf("healthz %d %s", rec.Code, rec.Body)
	}
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		return len(storeKeys(t, s.store)) == 0, "partial blocks not collected"
	})
	if got := value(s.m.ReplBytes); got > 200<<10+4*node.ChunkSize {
		t.Errorf("downloaded %v bytes of a root refused at 200 KiB", got)
	}
	// A smaller next root is taken.
	o.republish(t, map[string][]byte{"sub/big.bin": []byte("small now")})
	s.waitPinned(t, 2)
}

func TestSeederRefusesBadRecords(t *testing.T) {
	o := startOrigin(t, siteFiles("1"))
	s := startSeeder(t, o.Site(), o.srv.URL, nil)
	s.waitPinned(t, 1)
	o.republish(t, siteFiles("2"))
	s.waitPinned(t, 2, 1)

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	foreign, _ := node.NewRootRecord(otherKey, 50, o.Feed().Latest().Root, time.Now())
	old := o.Feed().History()[0].Bytes()
	tampered := o.Feed().Latest().Bytes()
	tampered[45] ^= 1 // the publication time
	good := o.Feed().Latest().Bytes()
	for _, tc := range []struct {
		name   string
		raw    []byte
		want   error
		reason string
	}{
		{"another key", foreign.Bytes(), node.ErrWrongSite, "wrong_site"},
		{"replayed old record", old, node.ErrStaleRecord, "stale"},
		{"tampered", tampered, node.ErrBadSignature, "bad_signature"},
		{"truncated", good[:len(good)-1], node.ErrBadRecord, "malformed"},
	} {
		before := value(s.m.RecordsRefuse.WithLabelValues(tc.reason))
		if err := s.Offer(tc.raw, "test"); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if got := value(s.m.RecordsRefuse.WithLabelValues(tc.reason)); got != before+1 {
			t.Errorf("%s: refusals %v", tc.name, got)
		}
	}
	if err := s.Offer(good, "test"); err != nil {
		t.Errorf("the current record again: %v", err)
	}
	if s.Feed().Latest().Seq != 2 {
		t.Fatalf("latest seq %d", s.Feed().Latest().Seq)
	}
}

// A corrupt block in the seeder's store is never served; the seeder
// deletes it and fetches it again.
func TestSeederRepairsCorruptBlock(t *testing.T) {
	o := startOrigin(t, siteFiles("1"))
	s := startSeeder(t, o.Site(), o.srv.URL, nil)
	s.waitPinned(t, 1)
	segs := []string{"sub", "v.txt"}
	n, err := node.Resolve(context.Background(), o.store, o.Feed().Latest().Root, segs)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := o.store.Get(context.Background(), n.Cid)
	if err := s.store.Put(context.Background(), n.Cid, []byte("bit rot")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.srv.URL + "/ipfs/" + n.Cid.String() + "?format=raw")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("corrupt block served with %d", resp.StatusCode)
	}
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		d, err := s.store.Get(context.Background(), n.Cid)
		return err == nil && bytes.Equal(d, good), "not repaired"
	})
}

// With the origin gone, a seeder replicates from a peer.
func TestSeederUsesPeers(t *testing.T) {
	o := startOrigin(t, siteFiles("1"))
	a := startSeeder(t, o.Site(), o.srv.URL, nil)
	a.waitPinned(t, 1)
	dead := o.srv.URL
	o.Close() // ends the event streams, which would hold the server open
	o.srv.Close()
	b := startSeeder(t, o.Site(), dead, func(c *seeder.Config) {
		c.Peers = []string{a.srv.URL}
		c.PollInterval = 100 * time.Millisecond
	})
	b.waitPinned(t, 1)
	st := b.Sources()
	if st[1].Blocks == 0 {
		t.Fatalf("sources %+v", st)
	}
	if _, err := seeder.New(seeder.Config{Site: o.Site(), Origin: "not a url", Store: memStore{node.NewMemStore(), node.NewMemMeta()}}); !errors.Is(err, gateway.ErrBadURL) {
		t.Fatalf("malformed origin: %v", err)
	}
}

// value reads a counter's or gauge's current value.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// TestSeederKeepsOtherSites: a seeder whose store also holds another
// site's pinned root, and a root pinned by CID, collects only its own
// garbage (here, loose blocks) and leaves those DAGs whole.
func TestSeederKeepsOtherSites(t *testing.T) {
	o := startOrigin(t, siteFiles("1"))
	other := startOrigin(t, map[string][]byte{"other.html": []byte("another community's site"), "big.bin": bytes.Repeat([]byte("o"), 600<<10)})
	otherRoot := other.Feed().Latest().Root
	byCID := node.Sum(node.CodecRaw, []byte("pinned by CID"))
	loose := node.Sum(node.CodecRaw, []byte("loose"))
	s := startSeeder(t, o.Site(), o.srv.URL, func(c *seeder.Config) {
		ctx := context.Background()
		st := c.Store.(*pebblestore.Store)
		for _, b := range blocksOf(t, other.store, otherRoot) {
			if err := st.Put(ctx, b.Cid, b.Data); err != nil {
				t.Fatal(err)
			}
		}
		if err := node.PutPin(st, other.Site(), node.Pin{Seq: 1, Root: otherRoot}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []cid.Cid{byCID, loose} {
			if err := st.Put(ctx, c, []byte(map[bool]string{true: "pinned by CID", false: "loose"}[c.Equals(byCID)])); err != nil {
				t.Fatal(err)
			}
		}
		if err := node.PinCID(st, byCID, 13); err != nil {
			t.Fatal(err)
		}
	})
	s.waitPinned(t, 1)
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		return value(s.m.GCDeleted) > 0, "no garbage collected"
	})
	keys := storeKeys(t, s.store)
	if keys[loose.KeyString()] {
		t.Error("the loose block was not collected")
	}
	if !keys[byCID.KeyString()] {
		t.Error("the root pinned by CID was collected")
	}
	for k := range blocksOf(t, other.store, otherRoot) {
		if !keys[k] {
			t.Fatalf("block %x of the other site's pinned root was collected", k)
		}
	}
}
