package origin_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/node/importer"
	"github.com/hearthcdn/hearth/node/origin"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

type memStore struct {
	*node.MemStore
	*node.MemMeta
}

func newOrigin(t *testing.T, files map[string][]byte) (*origin.Origin, string) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	harness.WriteTree(t, dir, files)
	o, err := origin.New(origin.Config{
		Store:    memStore{node.NewMemStore(), node.NewMemMeta()},
		Key:      key,
		Source:   dir,
		Debounce: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o, dir
}

func TestPublishSignsOnlyChanges(t *testing.T) {
	o, dir := newOrigin(t, map[string][]byte{"index.html": []byte("v1")})
	ctx := context.Background()
	r1, isNew, err := o.Publish(ctx)
	if err != nil || !isNew || r1.Seq != 1 {
		t.Fatalf("first publish: %v %v %v", r1, isNew, err)
	}
	r, isNew, err := o.Publish(ctx)
	if err != nil || isNew || r.Seq != 1 {
		t.Fatalf("unchanged publish: %v %v %v", r, isNew, err)
	}
	harness.WriteTree(t, dir, map[string][]byte{"index.html": []byte("v2")})
	r2, isNew, err := o.Publish(ctx)
	if err != nil || !isNew || r2.Seq != 2 || r2.Root.Equals(r1.Root) {
		t.Fatalf("changed publish: %v %v %v", r2, isNew, err)
	}
	if r2.Site != o.Site() {
		t.Fatal("record for another site")
	}
}

func TestOriginServes(t *testing.T) {
	o, _ := newOrigin(t, map[string][]byte{"index.html": []byte("<p>home"), "a/b.css": []byte("b{}")})
	srv := httptest.NewServer(o.Handler())
	defer srv.Close()
	if code := status(t, srv.URL+"/healthz"); code != 503 {
		t.Fatalf("healthz before publishing: %d", code)
	}
	if code := status(t, srv.URL+"/"); code != 503 {
		t.Fatalf("site before publishing: %d", code)
	}
	rec, _, err := o.Publish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"/healthz": 200, "/": 200, "/a/b.css": 200, "/metrics": 200,
		gateway.RecordPath(o.Site()):                             200,
		"/ipfs/" + rec.Root.String() + "?format=car":             200,
		"/ipfs/" + rec.Root.String() + "/a/b.css?format=car":     200,
		"/ipfs/" + rec.Root.String() + "/missing.css?format=car": 404,
	} {
		if code := status(t, srv.URL+path); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}
	got, err := gateway.FetchRecord(context.Background(), nil, srv.URL, o.Site())
	if err != nil || got.Seq != rec.Seq {
		t.Fatalf("record: %v", err)
	}
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Watch republishes after a change, including in directories created later.
func TestWatchRepublishes(t *testing.T) {
	o, dir := newOrigin(t, map[string][]byte{"index.html": []byte("v1"), "sub/a.txt": []byte("a")})
	ctx, cancel := context.WithCancel(context.Background())
	if _, _, err := o.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- o.Watch(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	// write writes content at path (relative to the source) and waits until
	// the site serves it under a newer record. It writes again while
	// waiting, so a change made before a watch was in place is not lost;
	// the same content again changes no root.
	write := func(path, content string) {
		t.Helper()
		before := o.Feed().Latest().Seq
		harness.Eventually(t, 10*time.Second, func() (bool, string) {
			harness.WriteTree(t, dir, map[string][]byte{path: []byte(content)})
			rec := httptest.NewRecorder()
			o.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/"+path, nil))
			got := rec.Body.String()
			return rec.Code == 200 && got == content && o.Feed().Latest().Seq > before, fmt.Sprintf("%s: %d %q", path, rec.Code, got)
		})
	}
	write("sub/a.txt", "a2")
	// A directory created later is watched too: a change in it republishes.
	if err := os.MkdirAll(filepath.Join(dir, "new", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("new/deeper/x.txt", "x")
	write("new/deeper/x.txt", "x2")
	write("new/deeper/x.txt", "x3")
}

// pebbleAndKey opens a pebble store on disk (closed at cleanup) and makes
// a site key.
func pebbleAndKey(t *testing.T) (*pebblestore.Store, ed25519.PrivateKey) {
	t.Helper()
	st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return st, key
}

// TestOriginRetention: with Keep 2 and no grace, four publishes leave the
// two newest roots pinned and whole, and the older roots' own blocks
// deleted (404 at the gateway); with a grace of an hour, roots replaced
// within it stay pinned however many there are.
func TestOriginRetention(t *testing.T) {
	ctx := context.Background()
	st, key := pebbleAndKey(t)
	dir := t.TempDir()
	version := func(v int) map[string][]byte {
		return map[string][]byte{
			"index.html": []byte("shared"),
			"big.bin":    bytes.Repeat([]byte{byte(v)}, 2*node.ChunkSize+10), // leaves of its own
		}
	}
	start := func(keep int, keepFor time.Duration) (*origin.Origin, *httptest.Server) {
		o, err := origin.New(origin.Config{Store: st, Key: key, Source: dir, Keep: keep, KeepFor: keepFor})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(o.Handler())
		t.Cleanup(func() { srv.Close(); o.Close() })
		return o, srv
	}
	o, srv := start(2, time.Nanosecond)
	var recs []*node.RootRecord
	own := make([]map[string]node.Block, 0, 5) // each version's blocks
	for v := 1; v <= 4; v++ {
		harness.WriteTree(t, dir, version(v))
		rec, isNew, err := o.Publish(ctx)
		if err != nil || !isNew {
			t.Fatalf("publish %d: %v %v", v, isNew, err)
		}
		recs = append(recs, rec)
		own = append(own, harness.DAGBlocks(t, st, rec.Root))
	}
	pinned := func() []uint64 {
		var out []uint64
		for _, p := range node.LoadPins(st, o.Site()) {
			out = append(out, p.Seq)
		}
		return out
	}
	if got := fmt.Sprint(pinned()); got != "[4 3]" {
		t.Fatalf("pins %s, want [4 3]", got)
	}
	for i, rec := range recs {
		kept := i >= 2
		if _, err := node.MarkDAG(ctx, st, rec.Root, nil, map[string]struct{}{}); (err == nil) != kept {
			t.Errorf("seq %d: whole DAG %v, want %v (err %v)", rec.Seq, err == nil, kept, err)
		}
		// A leaf of this version's big.bin alone.
		for _, b := range own[i] {
			if b.Cid.Type() != node.CodecRaw || len(b.Data) != node.ChunkSize {
				continue
			}
			want := 200
			if !kept {
				want = 404
			}
			if code := status(t, srv.URL+"/ipfs/"+b.Cid.String()+"?format=raw"); code != want {
				t.Errorf("seq %d leaf: %d, want %d", rec.Seq, code, want)
			}
			break
		}
	}
	if got := get(t, srv.URL+"/big.bin"); !bytes.Equal(got, version(4)["big.bin"]) {
		t.Error("the newest root's file is not served whole")
	}

	// An hour's grace: seq 4 and 3 were replaced just now, so both stay.
	o2, _ := start(1, time.Hour)
	harness.WriteTree(t, dir, version(5))
	if _, _, err := o2.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(pinned()); got != "[5 4 3]" {
		t.Fatalf("pins %s with an hour's grace, want [5 4 3]", got)
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return b
}

// TestOriginRetentionBadPin: an unreadable pin in the store stops
// collection, not publishing: the new record is served, no block is
// deleted, and once the pin is gone the next publish collects.
func TestOriginRetentionBadPin(t *testing.T) {
	ctx := context.Background()
	st := memStore{node.NewMemStore(), node.NewMemMeta()}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	o, err := origin.New(origin.Config{Store: st, Key: key, Source: dir, Keep: 1, KeepFor: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	harness.WriteTree(t, dir, map[string][]byte{"index.html": []byte("v1")})
	if _, _, err := o.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.PutMeta("pin/cid/garbled", []byte{1}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := 0
		for _, err := range st.AllKeys(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n
	}
	before := count()
	harness.WriteTree(t, dir, map[string][]byte{"index.html": []byte("v2")})
	rec, isNew, err := o.Publish(ctx)
	if err != nil || !isNew || o.Feed().Latest().Seq != rec.Seq {
		t.Fatalf("publish with a bad pin in the store: %v %v", isNew, err)
	}
	if n := count(); n <= before {
		t.Fatalf("%d blocks after publishing v2, %d before: something was deleted", n, before)
	}
	if err := st.DeleteMeta("pin/cid/garbled"); err != nil {
		t.Fatal(err)
	}
	harness.WriteTree(t, dir, map[string][]byte{"index.html": []byte("v3")})
	if _, _, err := o.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != len(harness.DAGBlocks(t, st, o.Feed().Latest().Root)) {
		t.Fatalf("%d blocks after the bad pin went, want the newest root's alone", n)
	}
}

// TestOriginRetainsUnpinnedRecords: roots that records name but no pin
// holds (a store from before pins, or a collection that failed) are
// pinned when retention keeps them, not collected.
func TestOriginRetainsUnpinnedRecords(t *testing.T) {
	ctx := context.Background()
	st, key := pebbleAndKey(t)
	dir := t.TempDir()
	// Two records signed with no pin, as before pins existed.
	var roots []cid.Cid
	for v := 1; v <= 2; v++ {
		harness.WriteTree(t, dir, map[string][]byte{"index.html": fmt.Appendf(nil, "v%d", v)})
		root, err := importer.New(st, importer.Options{}).ImportPath(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := node.NewRecordLog(st).SignNext(key, root, time.Now()); err != nil {
			t.Fatal(err)
		}
		roots = append(roots, root)
	}
	o, err := origin.New(origin.Config{Store: st, Key: key, Source: dir, Keep: 2, KeepFor: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	harness.WriteTree(t, dir, map[string][]byte{"index.html": []byte("v3")})
	if _, _, err := o.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, p := range node.LoadPins(st, o.Site()) {
		seqs = append(seqs, p.Seq)
	}
	if fmt.Sprint(seqs) != "[3 2]" {
		t.Fatalf("pins %v, want [3 2]: the record kept was not pinned", seqs)
	}
	if _, err := node.MarkDAG(ctx, st, roots[1], nil, map[string]struct{}{}); err != nil {
		t.Fatalf("seq 2's root, kept by Keep 2, lost: %v", err)
	}
	if ok, _ := st.Has(ctx, roots[0]); ok {
		t.Fatal("seq 1's root, outside the retention, was not collected")
	}
}
