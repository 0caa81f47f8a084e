//go:build !js

package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

func siteServer(t *testing.T, f *fixture) string {
	t.Helper()
	root := func(context.Context) (cid.Cid, error) { return f.root, nil }
	return newServer(t, gateway.NewSite(node.NewVerifyingStore(f.store), root, gateway.SiteOptions{})).URL
}

func TestSiteFiles(t *testing.T) {
	f := newFixture(t)
	url := siteServer(t, f)
	for _, tc := range []struct {
		path, file, ctype string
	}{
		{"/", "index.html", "text/html; charset=utf-8"},
		{"/index.html", "index.html", "text/html; charset=utf-8"},
		{"/a/b.txt", "a/b.txt", "text/plain; charset=utf-8"},
		{"/a/c/", "a/c/index.html", "text/html; charset=utf-8"},
		{"/style/site.css", "style/site.css", "text/css; charset=utf-8"},
		{"/noext", "noext", "image/png"}, // sniffed
		{"/big.bin", "big.bin", "application/octet-stream"},
		{"/dup.bin", "dup.bin", "application/octet-stream"},
		{"/empty.txt", "empty.txt", "text/plain; charset=utf-8"},
		{"/deep/x/y/z/w.json", "deep/x/y/z/w.json", "application/json"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, url+tc.path)
			if resp.StatusCode != 200 || !bytes.Equal(body, f.files[tc.file]) {
				t.Fatalf("status %d, %d bytes, want %d", resp.StatusCode, len(body), len(f.files[tc.file]))
			}
			if ct := resp.Header.Get("Content-Type"); ct != tc.ctype {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			etag := `"` + f.resolve(t, tc.file).String() + `"`
			if resp.Header.Get("Etag") != etag {
				t.Errorf("Etag %q, want %q", resp.Header.Get("Etag"), etag)
			}
			if resp.Header.Get("Cache-Control") != "public, no-cache" {
				t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
			}
			resp, body = get(t, url+tc.path, "If-None-Match", etag)
			if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
				t.Errorf("If-None-Match: status %d", resp.StatusCode)
			}
		})
	}
	// Redirect to the slash form, keeping the query.
	req, _ := http.NewRequest("GET", url+"/a/c?x=1", nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/a/c/?x=1" {
		t.Fatalf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for path, want := range map[string]int{"/nope": 404, "/a/": 404, "/a/b.txt/x": 404, "/%2e%2e/x": 400} {
		if resp, _ := get(t, url+path); resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d", path, resp.StatusCode, want)
		}
	}
	if resp, _ := do(t, http.MethodDelete, url+"/"); resp.StatusCode != 405 {
		t.Errorf("DELETE: %d", resp.StatusCode)
	}
}

func TestSiteRanges(t *testing.T) {
	f := newFixture(t)
	url := siteServer(t, f)
	big := f.files["big.bin"]
	for _, tc := range []struct {
		rng        string
		start, end int // expected bytes [start, end)
	}{
		{"bytes=0-99", 0, 100},
		{"bytes=262140-262150", 262140, 262151}, // across a leaf boundary
		{"bytes=-5", len(big) - 5, len(big)},
		{"bytes=1000000-", 1000000, len(big)},
	} {
		resp, body := get(t, url+"/big.bin", "Range", tc.rng)
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, big[tc.start:tc.end]) {
			t.Errorf("%s: status %d, %d bytes", tc.rng, resp.StatusCode, len(body))
		}
	}
	if resp, _ := get(t, url+"/big.bin", "Range", "bytes=99999999-"); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end: %d", resp.StatusCode)
	}
	// Multi-range responses are multipart; If-Range with a stale ETag gives the whole file.
	resp, _ := get(t, url+"/big.bin", "Range", "bytes=0-1,500000-500001")
	if resp.StatusCode != http.StatusPartialContent {
		t.Errorf("multi-range: %d", resp.StatusCode)
	}
	resp, body := get(t, url+"/big.bin", "Range", "bytes=0-1", "If-Range", `"stale"`)
	if resp.StatusCode != 200 || len(body) != len(big) {
		t.Errorf("If-Range stale: %d", resp.StatusCode)
	}
}

func TestSiteNoRootYet(t *testing.T) {
	root := func(context.Context) (cid.Cid, error) { return cid.Undef, gateway.ErrNoRoot }
	srv := newServer(t, gateway.NewSite(node.NewMemStore(), root, gateway.SiteOptions{}))
	if resp, _ := get(t, srv.URL+"/"); resp.StatusCode != 503 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// FileReader reads any range correctly after any sequence of seeks.
func TestFileReaderSeeks(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"big.bin", "dup.bin", "a/b.txt", "empty.txt"} {
		want := f.files[name]
		n, err := node.Resolve(context.Background(), f.store, f.root, splitPath(name))
		if err != nil {
			t.Fatal(err)
		}
		fr, err := gateway.NewFileReader(context.Background(), f.store, n)
		if err != nil {
			t.Fatal(err)
		}
		if fr.Size() != int64(len(want)) {
			t.Fatalf("%s: size %d, want %d", name, fr.Size(), len(want))
		}
		all, err := io.ReadAll(fr)
		if err != nil || !bytes.Equal(all, want) {
			t.Fatalf("%s: ReadAll: %v", name, err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		for range 200 {
			if len(want) == 0 {
				break
			}
			off := r.IntN(len(want))
			ln := r.IntN(300000)
			if _, err := fr.Seek(int64(off), io.SeekStart); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, ln)
			got, err := io.ReadFull(fr, buf)
			end := min(off+ln, len(want))
			if got != end-off || !bytes.Equal(buf[:got], want[off:end]) {
				t.Fatalf("%s: read %d at %d: got %d bytes, %v", name, ln, off, got, err)
			}
		}
		if _, err := fr.Seek(-1, io.SeekStart); err == nil {
			t.Errorf("%s: negative seek accepted", name)
		}
		if end, _ := fr.Seek(0, io.SeekEnd); end != int64(len(want)) {
			t.Errorf("%s: SeekEnd %d", name, end)
		}
	}
	dir, _ := node.Resolve(context.Background(), f.store, f.root, []string{"a"})
	if _, err := gateway.NewFileReader(context.Background(), f.store, dir); !errors.Is(err, node.ErrNotDir) {
		t.Errorf("reader over a directory: %v", err)
	}
}

func splitPath(p string) []string {
	s, _ := node.SplitPath(p)
	return s
}
