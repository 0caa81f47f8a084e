//go:build !js

package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

// hostile is a gateway that misbehaves in one way and counts its requests.
type hostile struct {
	n     atomic.Int64
	serve func(w http.ResponseWriter, r *http.Request)
}

func (h *hostile) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.n.Add(1)
	h.serve(w, r)
}

func hostileServer(t *testing.T, serve func(w http.ResponseWriter, r *http.Request)) (string, *hostile) {
	t.Helper()
	h := &hostile{serve: serve}
	return newServer(t, h).URL, h
}

// endless writes bytes until the client goes away.
func endless(w http.ResponseWriter, r *http.Request, ctype string) {
	w.Header().Set("Content-Type", ctype)
	buf := bytes.Repeat([]byte{0xAB}, 32<<10)
	for r.Context().Err() == nil {
		if _, err := w.Write(buf); err != nil {
			return
		}
	}
}

// drip writes prefix, then one byte every 50 ms until the client goes away.
func drip(w http.ResponseWriter, r *http.Request, ctype string, prefix []byte) {
	w.Header().Set("Content-Type", ctype)
	w.Write(prefix)
	rc := http.NewResponseController(w)
	for r.Context().Err() == nil {
		if _, err := w.Write([]byte{0}); err != nil {
			return
		}
		rc.Flush()
		select {
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
		}
	}
}

func fastOpts() gateway.FetcherOptions {
	return gateway.FetcherOptions{RequestTimeout: time.Second, IdleTimeout: time.Second}
}

// allocDuring returns the bytes allocated while fn runs (whole process).
func allocDuring(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func TestFetcherBlockHostileSources(t *testing.T) {
	f := newFixture(t)
	good, _ := serveStore(t, f.store)
	leaf := f.resolve(t, "big.bin")
	n, _ := node.Resolve(context.Background(), f.store, f.root, []string{"big.bin"})
	leaf = n.Links[0].Cid // a full 256 KiB leaf
	want, _ := f.store.Get(context.Background(), leaf)

	for _, tc := range []struct {
		name    string
		serve   func(w http.ResponseWriter, r *http.Request)
		dropped bool
		want    error
	}{
		{"wrong bytes", func(w http.ResponseWriter, r *http.Request) {
			bad := append([]byte(nil), want...)
			bad[7] ^= 1
			w.Write(bad)
		}, true, node.ErrCorrupt},
		{"endless body", func(w http.ResponseWriter, r *http.Request) { endless(w, r, gateway.MediaRaw) }, true, node.ErrTooLarge},
		{"huge Content-Length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(1<<30))
			w.Write(want)
		}, true, node.ErrTooLarge},
		{"slow drip", func(w http.ResponseWriter, r *http.Request) { drip(w, r, gateway.MediaRaw, want[:1000]) }, false, gateway.ErrTooSlow},
		{"no headers", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, false, gateway.ErrTooSlow},
		{"an HTML page", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>hi</html>")) }, true, node.ErrCorrupt},
		{"server error", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", 503) }, false, gateway.ErrSourceFailed},
		{"not found", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, false, node.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, h := hostileServer(t, tc.serve)
			fe, err := gateway.NewFetcher([]string{bad, good.URL}, fastOpts())
			if err != nil {
				t.Fatal(err)
			}
			var data []byte
			start := time.Now()
			alloc := allocDuring(func() { data, err = fe.Block(context.Background(), leaf) })
			if err != nil || !bytes.Equal(data, want) {
				t.Fatalf("Block: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
			if alloc > 32<<20 {
				t.Errorf("allocated %d MiB", alloc>>20)
			}
			st := fe.Sources()
			if st[0].Dropped != tc.dropped {
				t.Errorf("hostile source dropped = %v, want %v (%v)", st[0].Dropped, tc.dropped, st[0].DropReason)
			}
			if tc.dropped && !errors.Is(st[0].DropReason, tc.want) {
				t.Errorf("drop reason %v, want %v", st[0].DropReason, tc.want)
			}
			if st[1].Blocks != 1 {
				t.Errorf("good source served %d blocks", st[1].Blocks)
			}
			// Only the hostile source, now: the error says why.
			fe2, _ := gateway.NewFetcher([]string{bad}, fastOpts())
			_, err = fe2.Block(context.Background(), leaf)
			if !errors.Is(err, gateway.ErrNoSources) || !errors.Is(err, tc.want) {
				t.Errorf("alone: %v, want %v", err, tc.want)
			}
			if tc.dropped {
				before := h.n.Load()
				if _, err := fe2.Block(context.Background(), leaf); !errors.Is(err, gateway.ErrNoSources) {
					t.Errorf("after dropping: %v", err)
				}
				if h.n.Load() != before {
					t.Error("a dropped source was asked again")
				}
			}
		})
	}
}

// A failing source cools down and the healthy ones are asked first.
func TestFetcherCoolDown(t *testing.T) {
	f := newFixture(t)
	good, goodN := serveStore(t, f.store)
	bad, badN := hostileServer(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 502) })
	fe, _ := gateway.NewFetcher([]string{bad, good.URL}, fastOpts())
	leaf := f.resolve(t, "a/b.txt")
	for range 5 {
		if _, err := fe.Block(context.Background(), leaf); err != nil {
			t.Fatal(err)
		}
	}
	if badN.n.Load() != 1 || goodN.n.Load() != 5 {
		t.Fatalf("bad asked %d times, good %d", badN.n.Load(), goodN.n.Load())
	}
	if _, err := gateway.NewFetcher([]string{"localhost:80"}, gateway.FetcherOptions{}); !errors.Is(err, gateway.ErrBadURL) {
		t.Errorf("URL without scheme: %v", err)
	}
}

// carBytes writes a CAR of blocks (by CID) from the fixture store.
func carBytes(t *testing.T, f *fixture, cs []cid.Cid) []byte {
	t.Helper()
	var buf bytes.Buffer
	cw, err := node.NewCARWriter(&buf, f.root)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		d, err := f.store.Get(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if err := cw.Put(context.Background(), node.Block{Cid: c, Data: d}); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestFetcherCARHostileSources(t *testing.T) {
	f := newFixture(t)
	good, _ := serveStore(t, f.store)
	req := node.Request{Root: f.root, Scope: node.ScopeAll}
	order := expected(t, f.store, req)
	full := carBytes(t, f, order)
	swapped := append([]cid.Cid{order[0], order[2], order[1]}, order[3:]...)
	serveCAR := func(body []byte) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", gateway.CARContentType)
			w.Write(body)
		}
	}
	// A header, then a section claiming 1 GiB.
	giant := append(append([]byte(nil), full[:firstSection(t, full)]...), 0x80, 0x80, 0x80, 0x80, 0x04)

	for _, tc := range []struct {
		name    string
		serve   func(w http.ResponseWriter, r *http.Request)
		dropped bool
		want    error
	}{
		{"blocks out of order", serveCAR(carBytes(t, f, swapped)), true, node.ErrUnexpectedBlock},
		{"a corrupt block", serveCAR(bytes.Replace(full, f.files["a/b.txt"], []byte("BEE\n"), 1)), true, gateway.ErrLied},
		{"truncated", serveCAR(full[:len(full)/2]), false, gateway.ErrSourceFailed},
		{"slow drip", func(w http.ResponseWriter, r *http.Request) {
			drip(w, r, gateway.CARContentType, full[:len(full)/3])
		}, false, gateway.ErrTooSlow},
		{"giant section", serveCAR(giant), true, gateway.ErrLied},
		{"endless garbage", func(w http.ResponseWriter, r *http.Request) { endless(w, r, gateway.CARContentType) }, true, gateway.ErrLied},
		{"an HTML page", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }, true, gateway.ErrLied},
		{"not found", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, false, node.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, _ := hostileServer(t, tc.serve)
			fe, _ := gateway.NewFetcher([]string{bad, good.URL}, fastOpts())
			dst := node.NewMemStore()
			start := time.Now()
			var err error
			alloc := allocDuring(func() { _, err = fe.CAR(context.Background(), req, dst) })
			if err != nil {
				t.Fatalf("CAR: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
			if alloc > 64<<20 {
				t.Errorf("allocated %d MiB", alloc>>20)
			}
			if dst.Len() != len(order) {
				t.Errorf("stored %d blocks, want %d", dst.Len(), len(order))
			}
			st := fe.Sources()
			if st[0].Dropped != tc.dropped {
				t.Errorf("dropped = %v, want %v (%v)", st[0].Dropped, tc.dropped, st[0].DropReason)
			}
			fe2, _ := gateway.NewFetcher([]string{bad}, fastOpts())
			if _, err := fe2.CAR(context.Background(), req, node.NewMemStore()); !errors.Is(err, tc.want) {
				t.Errorf("alone: %v, want %v", err, tc.want)
			}
		})
	}

	// Trailing junk after a complete CAR is never read.
	bad, _ := hostileServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", gateway.CARContentType)
		w.Write(full)
		endless(w, r, gateway.CARContentType)
	})
	fe, _ := gateway.NewFetcher([]string{bad}, fastOpts())
	if _, err := fe.CAR(context.Background(), req, node.NewMemStore()); err != nil {
		t.Fatalf("complete CAR followed by junk: %v", err)
	}
}

// firstSection returns the length of the CAR header (varint + header).
func firstSection(t *testing.T, car []byte) int {
	t.Helper()
	n, l := 0, 0
	for i, b := range car {
		n |= int(b&0x7f) << (7 * i)
		if b < 0x80 {
			l = i + 1
			break
		}
	}
	return l + n
}

// Duplicate blocks in a DAG (a file of repeated chunks) are sent once and
// read back from the batch or the store when the traversal meets them again.
func TestFetcherCARDuplicates(t *testing.T) {
	f := newFixture(t)
	good, _ := serveStore(t, f.store)
	fe, _ := gateway.NewFetcher([]string{good.URL}, gateway.FetcherOptions{})
	dst := node.NewMemStore()
	var stored atomic.Int64
	fe2, _ := gateway.NewFetcher([]string{good.URL}, gateway.FetcherOptions{OnStored: func(n int, _ int64) { stored.Add(int64(n)) }})
	res, err := fe2.CAR(context.Background(), node.Request{Root: f.root, Path: []string{"dup.bin"}, Scope: node.ScopeEntity}, dst)
	if err != nil {
		t.Fatal(err)
	}
	if res.Node.FileSize != 3*node.ChunkSize {
		t.Fatalf("entity size %d", res.Node.FileSize)
	}
	// root, dup.bin's node, one distinct leaf.
	if dst.Len() != 3 || stored.Load() != 3 {
		t.Fatalf("stored %d blocks (%d reported)", dst.Len(), stored.Load())
	}
	if _, err := fe.CAR(context.Background(), node.Request{Root: f.root, Path: []string{"missing"}, Scope: node.ScopeAll}, dst); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("missing path: %v", err)
	}
	if !strings.Contains(good.URL, "127.0.0.1") {
		t.Fatal("tests must stay on loopback")
	}
}
