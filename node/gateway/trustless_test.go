//go:build !js

package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	return do(t, http.MethodGet, url, hdr...)
}

func do(t *testing.T, method, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp, b
}

func TestTrustlessRawBlock(t *testing.T) {
	f := newFixture(t)
	srv, _ := serveStore(t, f.store)
	c := f.resolve(t, "a/b.txt")
	resp, body := get(t, srv.URL+"/ipfs/"+c.String()+"?format=raw")
	if resp.StatusCode != 200 || !bytes.Equal(body, f.files["a/b.txt"]) {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	want := map[string]string{
		"Content-Type":                "application/vnd.ipld.raw",
		"Etag":                        `"` + c.String() + `.raw"`,
		"Cache-Control":               "public, max-age=29030400, immutable",
		"X-Content-Type-Options":      "nosniff",
		"Content-Disposition":         `attachment; filename="` + c.String() + `.bin"`,
		"X-Ipfs-Roots":                c.String(),
		"Access-Control-Allow-Origin": "*",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}

	// Accept header instead of format; Content-Location names the format.
	resp, body = get(t, srv.URL+"/ipfs/"+c.String(), "Accept", "application/vnd.ipld.raw")
	if resp.StatusCode != 200 || !bytes.Equal(body, f.files["a/b.txt"]) {
		t.Fatalf("Accept raw: status %d", resp.StatusCode)
	}
	if loc := resp.Header.Get("Content-Location"); !strings.HasSuffix(loc, "?format=raw") {
		t.Errorf("Content-Location %q", loc)
	}

	// Conditional request.
	resp, body = get(t, srv.URL+"/ipfs/"+c.String()+"?format=raw", "If-None-Match", `W/"`+c.String()+`.raw"`)
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("If-None-Match: status %d, %d bytes", resp.StatusCode, len(body))
	}

	// HEAD carries the length, no body.
	resp, body = do(t, http.MethodHead, srv.URL+"/ipfs/"+c.String()+"?format=raw")
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(f.files["a/b.txt"])) {
		t.Fatalf("HEAD: status %d len %d body %d", resp.StatusCode, resp.ContentLength, len(body))
	}
}

func TestTrustlessStatusCodes(t *testing.T) {
	f := newFixture(t)
	srv, _ := serveStore(t, f.store)
	absent := node.Sum(node.CodecRaw, []byte("not stored"))
	leaf := f.resolve(t, "a/b.txt")
	root := f.root.String()
	for _, tc := range []struct {
		name, method, path string
		hdr                []string
		want               int
	}{
		{"no format, no Accept", "GET", "/ipfs/" + root, nil, 400},
		{"browser Accept", "GET", "/ipfs/" + root, []string{"Accept", "text/html,*/*"}, 400},
		{"unknown format", "GET", "/ipfs/" + root + "?format=tar", nil, 400},
		{"raw with path", "GET", "/ipfs/" + root + "/a/b.txt?format=raw", nil, 400},
		{"bad CID", "GET", "/ipfs/notacid?format=raw", nil, 400},
		{"absent block", "GET", "/ipfs/" + absent.String() + "?format=raw", nil, 404},
		{"absent root CAR", "GET", "/ipfs/" + absent.String() + "?format=car", nil, 404},
		{"only-if-cached absent", "GET", "/ipfs/" + absent.String() + "?format=raw", []string{"Cache-Control", "only-if-cached"}, 412},
		{"missing path", "GET", "/ipfs/" + root + "/nope/x?format=car", nil, 404},
		{"path through a file", "GET", "/ipfs/" + root + "/a/b.txt/x?format=car", nil, 404},
		{"dot-dot segment", "GET", "/ipfs/" + root + "/a/%2E%2E/b?format=car", nil, 400},
		{"bad dag-scope", "GET", "/ipfs/" + root + "?format=car&dag-scope=most", nil, 400},
		{"bad entity-bytes", "GET", "/ipfs/" + root + "/big.bin?format=car&entity-bytes=x:1", nil, 400},
		{"entity-bytes past the end", "GET", "/ipfs/" + root + "/big.bin?format=car&entity-bytes=99999999:*", nil, 400},
		{"dups=y", "GET", "/ipfs/" + root, []string{"Accept", "application/vnd.ipld.car; dups=y"}, 406},
		{"car-version 2", "GET", "/ipfs/" + root + "?format=car&car-version=2", nil, 406},
		{"POST", "POST", "/ipfs/" + leaf.String() + "?format=raw", nil, 405},
		{"probe raw", "GET", "/ipfs/bafkqaaa?format=raw", nil, 200},
		{"probe car", "GET", "/ipfs/bafkqaaa?format=car", nil, 200},
		{"q-values pick CAR", "GET", "/ipfs/" + root, []string{"Accept", "application/vnd.ipld.raw;q=0.5, application/vnd.ipld.car"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tc.method, srv.URL+tc.path, tc.hdr...)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if tc.want >= 400 && resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("error response Cache-Control %q", resp.Header.Get("Cache-Control"))
			}
		})
	}
}

// readCAR returns the CIDs of a CAR body in order, checking each block.
func readCAR(t *testing.T, body []byte) []cid.Cid {
	t.Helper()
	cr, err := node.NewCARReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out []cid.Cid
	for {
		b, err := cr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := node.Verify(b.Cid, b.Data); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Cid)
	}
}

// expected returns the blocks node.Traverse emits for req over g.
func expected(t *testing.T, g node.Getter, req node.Request) []cid.Cid {
	t.Helper()
	var out []cid.Cid
	if _, err := node.Traverse(context.Background(), g, req, func(b node.Block) error {
		out = append(out, b.Cid)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTrustlessCAR(t *testing.T) {
	f := newFixture(t)
	srv, _ := serveStore(t, f.store)
	br := func(s string) *node.ByteRange {
		r, err := node.ParseByteRange(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	etags := map[string]string{}
	for _, tc := range []struct {
		query string
		path  []string
		req   node.Request
	}{
		{"format=car", nil, node.Request{Scope: node.ScopeAll}},
		{"format=car&dag-scope=block", []string{"a", "b.txt"}, node.Request{Scope: node.ScopeBlock}},
		{"format=car&dag-scope=entity", []string{"big.bin"}, node.Request{Scope: node.ScopeEntity}},
		{"format=car&dag-scope=all", []string{"a"}, node.Request{Scope: node.ScopeAll}},
		{"format=car&entity-bytes=300000:600000", []string{"big.bin"}, node.Request{Scope: node.ScopeEntity, Bytes: br("300000:600000")}},
		{"format=car&entity-bytes=-10:*", []string{"big.bin"}, node.Request{Scope: node.ScopeEntity, Bytes: br("-10:*")}},
		{"format=car&dag-scope=entity", []string{"dup.bin"}, node.Request{Scope: node.ScopeEntity}},
		{"format=car&dag-scope=all", []string{"empty.txt"}, node.Request{Scope: node.ScopeAll}},
	} {
		name := tc.query + " /" + strings.Join(tc.path, "/")
		t.Run(name, func(t *testing.T) {
			tc.req.Root, tc.req.Path = f.root, tc.path
			url := srv.URL + "/ipfs/" + f.root.String()
			for _, s := range tc.path {
				url += "/" + s
			}
			resp, body := get(t, url+"?"+tc.query)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != gateway.CARContentType {
				t.Errorf("Content-Type %q", ct)
			}
			roots := strings.Split(resp.Header.Get("X-Ipfs-Roots"), ",")
			if len(roots) != len(tc.path)+1 || roots[0] != f.root.String() {
				t.Errorf("X-Ipfs-Roots %q", roots)
			}
			if len(tc.path) > 0 && roots[len(roots)-1] != f.resolve(t, strings.Join(tc.path, "/")).String() {
				t.Errorf("X-Ipfs-Roots ends with %s", roots[len(roots)-1])
			}
			got, want := readCAR(t, body), expected(t, f.store, tc.req)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("CAR blocks\n got %v\nwant %v", got, want)
			}
			etag := resp.Header.Get("Etag")
			if prev, dup := etags[etag]; dup {
				t.Errorf("ETag %s shared with %s", etag, prev)
			}
			etags[etag] = name
			resp, _ = get(t, url+"?"+tc.query, "If-None-Match", etag)
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match: status %d", resp.StatusCode)
			}
		})
	}
	// entity-bytes selects only the leaves the range touches.
	all := expected(t, f.store, node.Request{Root: f.root, Path: []string{"big.bin"}, Scope: node.ScopeEntity})
	part := expected(t, f.store, node.Request{Root: f.root, Path: []string{"big.bin"}, Scope: node.ScopeEntity, Bytes: br("300000:600000")})
	if len(part) >= len(all) {
		t.Errorf("range selected %d blocks of %d", len(part), len(all))
	}
}

// A block missing below the root ends the CAR abruptly: the client sees a
// broken stream, never a complete-looking one.
func TestTrustlessCARMissingChildAborts(t *testing.T) {
	f := newFixture(t)
	leaf := f.resolve(t, "style/site.css")
	if err := f.store.Delete(context.Background(), leaf); err != nil {
		t.Fatal(err)
	}
	srv, _ := serveStore(t, f.store)
	resp, err := http.Get(srv.URL + "/ipfs/" + f.root.String() + "?format=car")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_, err = io.ReadAll(resp.Body)
	if err == nil {
		t.Fatal("the truncated CAR read as complete")
	}
}

// A corrupt block in the store is never served, and the owner hears of it.
func TestTrustlessCorruptStoreBlock(t *testing.T) {
	f := newFixture(t)
	leaf := f.resolve(t, "a/b.txt")
	if err := f.store.Put(context.Background(), leaf, []byte("evil")); err != nil {
		t.Fatal(err)
	}
	var reported []cid.Cid
	h := gateway.NewTrustless(f.store, gateway.TrustlessOptions{OnCorrupt: func(c cid.Cid) { reported = append(reported, c) }})
	srv := newServer(t, h)
	resp, body := get(t, srv.URL+"/ipfs/"+leaf.String()+"?format=raw")
	if resp.StatusCode != 500 || bytes.Contains(body, []byte("evil")) {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if len(reported) != 1 || !reported[0].Equals(leaf) {
		t.Fatalf("reported %v", reported)
	}
}

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 200},
		{fmt.Errorf("x: %w", gateway.ErrBadRequest), 400},
		{fmt.Errorf("x: %w", node.ErrBadSiteID), 400},
		{fmt.Errorf("x: %w", node.ErrBadRange), 400},
		{fmt.Errorf("x: %w", node.ErrNotFound), 404},
		{fmt.Errorf("x: %w", node.ErrNoSuchPath), 404},
		{fmt.Errorf("x: %w", gateway.ErrUnknownSite), 404},
		{fmt.Errorf("x: %w", gateway.ErrMethod), 405},
		{fmt.Errorf("x: %w", gateway.ErrNotAcceptable), 406},
		{fmt.Errorf("x: %w: %w", gateway.ErrNotCached, node.ErrNotFound), 412},
		{fmt.Errorf("x: %w", node.ErrBadNode), 422},
		{fmt.Errorf("x: %w", gateway.ErrNoRoot), 503},
		{context.DeadlineExceeded, 504},
		{fmt.Errorf("x: %w", node.ErrCorrupt), 500},
		{errors.New("disk on fire"), 500},
	} {
		if got := gateway.StatusOf(tc.err); got != tc.want {
			t.Errorf("StatusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
