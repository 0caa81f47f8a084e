package serve

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/js/inject"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
)

// site is a published test tree.
type site struct {
	store *node.MemStore
	root  cid.Cid
	files map[string][]byte
}

func newSite(t *testing.T) *site {
	t.Helper()
	dir := t.TempDir()
	big := make([]byte, 3*node.ChunkSize+12345) // four leaves
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"index.html":        []byte("<!doctype html><title>home</title>"),
		"a/index.html":      []byte("<!doctype html><title>a</title>"),
		"a/style.css":       []byte("body { color: red }"),
		"big.bin":           big,
		"zeros.dat":         make([]byte, 5*node.ChunkSize), // five identical leaves
		"noext":             []byte("%PDF-1.4 not really"),
		"empty.txt":         {},
		"sp ace/f%20i.js":   []byte("let x = 1"),
		"nodir/readme.text": []byte("no index here"),
	}
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := node.NewMemStore()
	root, err := importer.New(st, importer.Options{}).ImportPath(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return &site{store: st, root: root, files: files}
}

// storeSource answers like a Trustless Gateway over a store, optionally
// lying: mutate may change the i-th block it sends.
type storeSource struct {
	g      node.Getter
	kind   Kind
	mutate func(i int, b node.Block) node.Block

	mu     sync.Mutex
	opened []node.Request
}

func (s *storeSource) Kind() Kind { return s.kind }

func (s *storeSource) Open(ctx context.Context, req node.Request) (Stream, error) {
	s.mu.Lock()
	s.opened = append(s.opened, req)
	s.mu.Unlock()
	var blocks []node.Block
	if _, err := node.Traverse(ctx, s.g, req, func(b node.Block) error {
		if s.mutate != nil {
			b = s.mutate(len(blocks), b)
		}
		blocks = append(blocks, b)
		return nil
	}); err != nil {
		return nil, err
	}
	return &sliceStream{blocks: blocks}, nil
}

func (s *storeSource) opens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.opened)
}

type sliceStream struct{ blocks []node.Block }

func (s *sliceStream) Next() (node.Block, error) {
	if len(s.blocks) == 0 {
		return node.Block{}, io.EOF
	}
	b := s.blocks[0]
	s.blocks = s.blocks[1:]
	return b, nil
}
func (s *sliceStream) Close() error { return nil }

// failSource fails every Open.
type failSource struct{ kind Kind }

func (f failSource) Kind() Kind { return f.kind }
func (f failSource) Open(context.Context, node.Request) (Stream, error) {
	return nil, errors.New("unreachable")
}

// memCache is a Cache in memory; drop makes it forget every Put.
type memCache struct {
	mu   sync.Mutex
	m    map[string][]byte
	drop bool
}

func newMemCache() *memCache { return &memCache{m: map[string][]byte{}} }

func (c *memCache) Get(_ context.Context, k cid.Cid) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[k.KeyString()]
	if !ok {
		return nil, node.ErrNotFound
	}
	return d, nil
}
func (c *memCache) Put(b node.Block) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.drop {
		c.m[b.Cid.KeyString()] = b.Data
	}
}
func (c *memCache) Delete(k cid.Cid) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k.KeyString())
}
func (c *memCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

type result struct {
	status int
	header http.Header
	body   []byte
	err    error // from WriteBody
	stats  StatsSnapshot
}

func do(t *testing.T, srv *Server, root cid.Cid, method, path string, h http.Header, sources ...Source) (*result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, q, _ := strings.Cut(path, "?")
	if h == nil {
		h = http.Header{}
	}
	resp, err := srv.Serve(ctx, Request{Method: method, Root: root, Path: p, Query: q, Header: h, Sources: sources})
	if err != nil {
		return nil, err
	}
	r := &result{status: resp.Status, header: http.Header{}}
	for _, kv := range resp.Header {
		r.header.Add(kv[0], kv[1])
	}
	var buf bytes.Buffer
	r.err = resp.WriteBody(ctx, &buf)
	r.body = buf.Bytes()
	r.stats = resp.Stats.Snapshot()
	if resp.Length >= 0 && r.err == nil && int64(len(r.body)) != resp.Length && method == "GET" {
		t.Errorf("%s: body of %d bytes, Content-Length %d", path, len(r.body), resp.Length)
	}
	return r, nil
}

func TestServeFiles(t *testing.T) {
	s := newSite(t)
	for _, tc := range []struct {
		path, file, ctype string
	}{
		{"/", "index.html", "text/html; charset=utf-8"},
		{"/a/", "a/index.html", "text/html; charset=utf-8"},
		{"/a/style.css", "a/style.css", "text/css; charset=utf-8"},
		{"/big.bin", "big.bin", "application/octet-stream"},
		{"/zeros.dat", "zeros.dat", "application/octet-stream"},
		{"/noext", "noext", "application/pdf"},
		{"/sp%20ace/f%2520i.js", "sp ace/f%20i.js", "text/javascript; charset=utf-8"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			src := &storeSource{g: s.store, kind: FromOrigin}
			r, err := do(t, &Server{Cache: newMemCache(), Window: 64 << 10}, s.root, "GET", tc.path, nil, src)
			if err != nil {
				t.Fatal(err)
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			want := s.files[tc.file]
			if r.status != 200 || !bytes.Equal(r.body, want) {
				t.Fatalf("status %d, %d bytes; want 200, %d bytes", r.status, len(r.body), len(want))
			}
			if got := r.header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			n, err := node.Resolve(context.Background(), s.store, s.root, strings.Split(tc.file, "/"))
			if err != nil {
				t.Fatal(err)
			}
			if got := r.header.Get("Etag"); got != `"`+n.Cid.String()+`"` {
				t.Errorf("ETag %s, want the CID %s", got, n.Cid)
			}
			if r.stats.Origin == 0 || r.stats.Peer != 0 {
				t.Errorf("stats %+v: want origin bytes only", r.stats)
			}
			if src.opens() > 2 {
				t.Errorf("%d source requests, want at most 2", src.opens())
			}
		})
	}
}

func TestRedirectAndPassThrough(t *testing.T) {
	s := newSite(t)
	src := &storeSource{g: s.store, kind: FromOrigin}
	srv := &Server{Cache: newMemCache()}
	r, err := do(t, srv, s.root, "GET", "/a?x=1", nil, src)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 301 || r.header.Get("Location") != "/a/?x=1" {
		t.Fatalf("status %d Location %q, want 301 /a/?x=1", r.status, r.header.Get("Location"))
	}
	for _, p := range []string{"/missing.html", "/nodir/", "/a/style.css/x", "/../x", "/%zz"} {
		if _, err := do(t, srv, s.root, "GET", p, nil, src); !errors.Is(err, ErrPassThrough) {
			t.Errorf("%s: %v, want ErrPassThrough", p, err)
		}
	}
	if _, err := do(t, srv, s.root, "POST", "/", nil, src); !errors.Is(err, ErrPassThrough) {
		t.Errorf("POST: %v, want ErrPassThrough", err)
	}
}

func TestRanges(t *testing.T) {
	s := newSite(t)
	big := s.files["big.bin"]
	size := len(big)
	for _, tc := range []struct {
		rng, ifRange string
		status       int
		from, to     int // inclusive, for 206
	}{
		{"bytes=0-99", "", 206, 0, 99},
		{"bytes=262100-262200", "", 206, 262100, 262200}, // across a leaf boundary
		{"bytes=-10", "", 206, size - 10, size - 1},
		{fmt.Sprintf("bytes=%d-", size-5), "", 206, size - 5, size - 1},
		{"bytes=5-999999999", "", 206, 5, size - 1},
		{fmt.Sprintf("bytes=%d-", size), "", 416, 0, 0},
		{"bytes=0-1,5-6", "", 200, 0, size - 1},
		{"items=0-1", "", 200, 0, size - 1},
		{"bytes=0-99", `"other"`, 200, 0, size - 1},
	} {
		t.Run(tc.rng+tc.ifRange, func(t *testing.T) {
			h := http.Header{"Range": {tc.rng}}
			if tc.ifRange != "" {
				h.Set("If-Range", tc.ifRange)
			}
			src := &storeSource{g: s.store, kind: FromOrigin}
			r, err := do(t, &Server{Cache: newMemCache()}, s.root, "GET", "/big.bin", h, src)
			if err != nil {
				t.Fatal(err)
			}
			if r.err != nil || r.status != tc.status {
				t.Fatalf("status %d, err %v; want %d", r.status, r.err, tc.status)
			}
			switch tc.status {
			case 206:
				if !bytes.Equal(r.body, big[tc.from:tc.to+1]) {
					t.Fatalf("wrong bytes")
				}
				if want := fmt.Sprintf("bytes %d-%d/%d", tc.from, tc.to, size); r.header.Get("Content-Range") != want {
					t.Fatalf("Content-Range %q, want %q", r.header.Get("Content-Range"), want)
				}
				// Only the leaves the range touches were fetched.
				if r.stats.Origin > int64(tc.to-tc.from)+2*node.ChunkSize+4096 {
					t.Errorf("fetched %d bytes for a range of %d", r.stats.Origin, tc.to-tc.from+1)
				}
			case 416:
				if r.header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
					t.Fatalf("Content-Range %q", r.header.Get("Content-Range"))
				}
			case 200:
				if !bytes.Equal(r.body, big) {
					t.Fatal("wrong bytes")
				}
			}
		})
	}
}

func TestConditionalAndHead(t *testing.T) {
	s := newSite(t)
	src := &storeSource{g: s.store, kind: FromOrigin}
	srv := &Server{Cache: newMemCache()}
	r, err := do(t, srv, s.root, "HEAD", "/big.bin", nil, src)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Length") != fmt.Sprint(len(s.files["big.bin"])) {
		t.Fatalf("HEAD: %d, %d body bytes, Content-Length %s", r.status, len(r.body), r.header.Get("Content-Length"))
	}
	etag := r.header.Get("Etag")
	r, err = do(t, srv, s.root, "GET", "/big.bin", http.Header{"If-None-Match": {`"x", ` + etag}}, src)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 304 || len(r.body) != 0 {
		t.Fatalf("If-None-Match: %d, %d bytes", r.status, len(r.body))
	}
	r, err = do(t, srv, s.root, "GET", "/empty.txt", nil, src)
	if err != nil || r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Length") != "0" {
		t.Fatalf("empty file: %v %+v", err, r)
	}
}

func TestCache(t *testing.T) {
	s := newSite(t)
	cache := newMemCache()
	srv := &Server{Cache: cache}
	src := &storeSource{g: s.store, kind: FromPeer}
	if r, err := do(t, srv, s.root, "GET", "/big.bin", nil, src); err != nil || r.err != nil {
		t.Fatal(err, r.err)
	}
	// Everything is cached now: no source is needed.
	r, err := do(t, srv, s.root, "GET", "/big.bin", nil, failSource{FromOrigin})
	if err != nil || r.err != nil || !bytes.Equal(r.body, s.files["big.bin"]) {
		t.Fatalf("from cache: %v %v", err, r)
	}
	if r.stats.Cache < int64(len(s.files["big.bin"])) || r.stats.Origin+r.stats.Peer != 0 {
		t.Fatalf("stats %+v, want all from the cache", r.stats)
	}
	// A corrupted cache entry is dropped and fetched again, never served.
	n, err := node.Resolve(context.Background(), s.store, s.root, []string{"big.bin"})
	if err != nil {
		t.Fatal(err)
	}
	segs, err := node.FileSegments(context.Background(), s.store, n, 0, n.FileSize)
	if err != nil {
		t.Fatal(err)
	}
	cache.mu.Lock()
	bad := append([]byte{}, cache.m[segs[2].Cid.KeyString()]...)
	bad[7] ^= 1
	cache.m[segs[2].Cid.KeyString()] = bad
	cache.mu.Unlock()
	r, err = do(t, srv, s.root, "GET", "/big.bin", nil, src)
	if err != nil || r.err != nil || !bytes.Equal(r.body, s.files["big.bin"]) {
		t.Fatalf("after corrupting the cache: %v %v", err, r.err)
	}
	if r.stats.Peer == 0 {
		t.Fatalf("stats %+v: the corrupt leaf was not fetched again", r.stats)
	}
}

func TestLyingSources(t *testing.T) {
	s := newSite(t)
	flip := func(at int) func(int, node.Block) node.Block {
		return func(i int, b node.Block) node.Block {
			if i == at {
				d := append([]byte{}, b.Data...)
				d[len(d)/2] ^= 0x80
				b.Data = d
			}
			return b
		}
	}
	swap := func(i int, b node.Block) node.Block { // a valid block, out of place
		if i == 3 {
			d := []byte("valid but unexpected")
			return node.Block{Cid: node.Sum(node.CodecRaw, d), Data: d}
		}
		return b
	}
	truncate := &storeSource{g: s.store, kind: FromPeer}
	for name, bad := range map[string]Source{
		"corrupt root":      &storeSource{g: s.store, kind: FromPeer, mutate: flip(0)},
		"corrupt leaf":      &storeSource{g: s.store, kind: FromPeer, mutate: flip(4)},
		"unexpected block":  &storeSource{g: s.store, kind: FromPeer, mutate: swap},
		"unreachable":       failSource{FromPeer},
		"truncated":         truncatingSource{truncate, 3},
		"wrong data length": &storeSource{g: s.store, kind: FromPeer, mutate: func(i int, b node.Block) node.Block { b.Data = b.Data[:len(b.Data)-1]; return b }},
	} {
		t.Run(name, func(t *testing.T) {
			good := &storeSource{g: s.store, kind: FromOrigin}
			r, err := do(t, &Server{Cache: newMemCache(), Window: 300 << 10}, s.root, "GET", "/big.bin", nil, bad, good)
			if err != nil {
				t.Fatal(err)
			}
			if r.err != nil || !bytes.Equal(r.body, s.files["big.bin"]) {
				t.Fatalf("body: %v", r.err)
			}
			if r.stats.PeerFailures != 1 || r.stats.Origin == 0 {
				t.Fatalf("stats %+v: want one peer failure and the rest from the origin", r.stats)
			}
		})
	}
	// With no honest source, the body stops with an error after a correct prefix.
	bad := &storeSource{g: s.store, kind: FromOrigin, mutate: flip(3)}
	r, err := do(t, &Server{Cache: newMemCache()}, s.root, "GET", "/big.bin", nil, bad)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(r.err, ErrNoSource) {
		t.Fatalf("WriteBody: %v, want ErrNoSource", r.err)
	}
	if !bytes.HasPrefix(s.files["big.bin"], r.body) || len(r.body) >= len(s.files["big.bin"]) {
		t.Fatalf("wrote %d bytes that are not a proper prefix", len(r.body))
	}
	// And when the path itself cannot be verified, the request passes through.
	bad = &storeSource{g: s.store, kind: FromOrigin, mutate: flip(0)}
	if _, err := do(t, &Server{Cache: newMemCache()}, s.root, "GET", "/big.bin", nil, bad); !errors.Is(err, ErrPassThrough) {
		t.Fatalf("corrupt root: %v, want ErrPassThrough", err)
	}
}

// truncatingSource ends each stream after n blocks.
type truncatingSource struct {
	*storeSource
	n int
}

func (s truncatingSource) Open(ctx context.Context, req node.Request) (Stream, error) {
	st, err := s.storeSource.Open(ctx, req)
	if err != nil {
		return nil, err
	}
	ss := st.(*sliceStream)
	ss.blocks = ss.blocks[:min(len(ss.blocks), s.n)]
	return ss, nil
}

// A cache that keeps nothing still serves files whose leaves repeat (sent
// once, dups=n), and a small window still streams a large file.
func TestNoCacheRepeatedLeaves(t *testing.T) {
	s := newSite(t)
	cache := newMemCache()
	cache.drop = true
	for _, p := range []string{"/zeros.dat", "/big.bin"} {
		src := &storeSource{g: s.store, kind: FromPeer}
		r, err := do(t, &Server{Cache: cache, Window: 1}, s.root, "GET", p, nil, src, failSource{FromOrigin})
		if err != nil || r.err != nil {
			t.Fatalf("%s: %v %v", p, err, r.err)
		}
		if !bytes.Equal(r.body, s.files[p[1:]]) {
			t.Fatalf("%s: wrong body", p)
		}
	}
	if cache.len() != 0 {
		t.Fatal("cache kept blocks")
	}
}

// slowWriter makes the reader slower than the source, so the window fills.
type slowWriter struct{ bytes.Buffer }

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return w.Buffer.Write(p)
}

func TestCancelMidBody(t *testing.T) {
	s := newSite(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &Server{Cache: newMemCache(), Window: 1}
	resp, err := srv.Serve(ctx, Request{Method: "GET", Root: s.root, Path: "/big.bin", Header: http.Header{},
		Sources: []Source{&storeSource{g: s.store, kind: FromPeer}}})
	if err != nil {
		t.Fatal(err)
	}
	w := &cancelWriter{cancel: cancel}
	err = resp.WriteBody(ctx, w)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteBody after cancel: %v", err)
	}
}

type cancelWriter struct{ cancel func() }

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.cancel()
	return 0, context.Canceled
}

// Concurrent requests for files of one directory fetch the directory once:
// the others wait for it and then ask for their file alone.
func TestConcurrentShareDirectory(t *testing.T) {
	s := newSite(t)
	src := &storeSource{g: s.store, kind: FromPeer}
	srv := &Server{Cache: newMemCache()}
	// Know the root, as after a navigation.
	if _, err := do(t, srv, s.root, "GET", "/", nil, src); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, p := range []string{"/a/style.css", "/a/index.html", "/a/style.css", "/a/"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := do(t, srv, s.root, "GET", p, nil, src)
			if err != nil || r.err != nil || r.status != 200 {
				t.Errorf("%s: %v %v", p, err, r)
			}
		}()
	}
	wg.Wait()
	withDir := 0
	src.mu.Lock()
	for _, req := range src.opened {
		if len(req.Path) > 1 {
			withDir++
		}
	}
	src.mu.Unlock()
	if withDir > 1 {
		t.Errorf("%d requests carried the directory: %v", withDir, src.opened)
	}
}

// With InjectLoader, HTML gets the page loader as the origin adds it: the
// same bytes and ETag, Range and 304 over them; other files as published.
func TestInjectLoader(t *testing.T) {
	s := newSite(t)
	src := &storeSource{g: s.store, kind: FromOrigin}
	srv := &Server{Cache: newMemCache(), InjectLoader: true}
	want, ok := inject.HTML(s.files["a/index.html"])
	if !ok {
		t.Fatal("the test page already carries the loader")
	}
	r, err := do(t, srv, s.root, "GET", "/a/", nil, src)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 200 || !bytes.Equal(r.body, want) || r.header.Get("Content-Length") != fmt.Sprint(len(want)) {
		t.Fatalf("/a/: %d, %q, Content-Length %s; want %q", r.status, r.body, r.header.Get("Content-Length"), want)
	}
	etag := r.header.Get("Etag")
	if !strings.HasSuffix(etag, inject.ETagSuffix+`"`) {
		t.Errorf("Etag %s: want the tagged representation's", etag)
	}
	r, err = do(t, srv, s.root, "GET", "/a/", http.Header{"If-None-Match": {etag}}, src)
	if err != nil || r.status != 304 {
		t.Fatalf("If-None-Match: %v, %+v", err, r)
	}
	r, err = do(t, srv, s.root, "GET", "/a/", http.Header{"Range": {"bytes=5-"}}, src)
	if err != nil || r.status != 206 || !bytes.Equal(r.body, want[5:]) {
		t.Fatalf("Range: %v, %+v", err, r)
	}
	r, err = do(t, srv, s.root, "HEAD", "/a/", nil, src)
	if err != nil || r.status != 200 || r.header.Get("Content-Length") != fmt.Sprint(len(want)) {
		t.Fatalf("HEAD: %v, %+v", err, r)
	}
	r, err = do(t, srv, s.root, "GET", "/a/style.css", nil, src)
	if err != nil || !bytes.Equal(r.body, s.files["a/style.css"]) {
		t.Fatalf("a/style.css: %v, %+v", err, r)
	}
	// Off: as published.
	r, err = do(t, &Server{Cache: newMemCache()}, s.root, "GET", "/a/", nil, src)
	if err != nil || !bytes.Equal(r.body, s.files["a/index.html"]) {
		t.Fatalf("/a/ without InjectLoader: %v, %+v", err, r)
	}
}
