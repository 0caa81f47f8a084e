//go:build !js

package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/js/inject"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

// With InjectLoader, HTML is served with the page loader added, as its own
// representation (ETag, Content-Length, Range, HEAD and 304 all follow the
// tagged bytes); other files, and pages that carry the loader, are served
// as published.
func TestSiteInjectsLoader(t *testing.T) {
	f := newFixture(t)
	root := func(context.Context) (cid.Cid, error) { return f.root, nil }
	url := newServer(t, gateway.NewSite(node.NewVerifyingStore(f.store), root, gateway.SiteOptions{InjectLoader: true})).URL

	page := f.files["index.html"]
	want, tagged := inject.HTML(page)
	if !tagged {
		t.Fatal("the fixture's index.html already carries the loader")
	}
	etag := inject.ETag(`"` + f.resolve(t, "index.html").String() + `"`)
	for _, p := range []string{"/", "/index.html"} {
		resp, body := get(t, url+p)
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Fatalf("%s: status %d, body %q; want the page with the loader", p, resp.StatusCode, body)
		}
		if resp.Header.Get("Etag") != etag || resp.Header.Get("Content-Length") != strconv.Itoa(len(want)) {
			t.Errorf("%s: Etag %q, Content-Length %q; want %q, %d", p, resp.Header.Get("Etag"), resp.Header.Get("Content-Length"), etag, len(want))
		}
	}
	if resp, body := get(t, url+"/", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match with the tagged ETag: status %d", resp.StatusCode)
	}
	if resp, _ := get(t, url+"/", "If-None-Match", `"`+f.resolve(t, "index.html").String()+`"`); resp.StatusCode != 200 {
		t.Errorf("If-None-Match with the file's ETag: status %d, want 200 (another representation)", resp.StatusCode)
	}
	if resp, body := get(t, url+"/", "Range", "bytes=2-9"); resp.StatusCode != 206 || !bytes.Equal(body, want[2:10]) ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 2-9/%d", len(want)) {
		t.Errorf("Range: status %d, %q, %q", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	if resp, _ := do(t, http.MethodHead, url+"/"); resp.StatusCode != 200 || resp.Header.Get("Content-Length") != strconv.Itoa(len(want)) {
		t.Errorf("HEAD: status %d, Content-Length %q", resp.StatusCode, resp.Header.Get("Content-Length"))
	}
	// Not HTML: as published.
	if resp, body := get(t, url+"/a/b.txt"); !bytes.Equal(body, f.files["a/b.txt"]) || resp.Header.Get("Etag") != `"`+f.resolve(t, "a/b.txt").String()+`"` {
		t.Errorf("a/b.txt was changed")
	}
}

// A page that already carries the loader is served byte for byte.
func TestSiteInjectOnce(t *testing.T) {
	page := []byte(`<!doctype html><head><script src="/.hearth/hearth.js" defer></script></head><p>x`)
	store, dir := harness.BuildDAG(t, map[string][]byte{"index.html": page})
	n, err := node.Resolve(context.Background(), store, dir, []string{"index.html"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := n.Cid
	root := func(context.Context) (cid.Cid, error) { return dir, nil }
	url := newServer(t, gateway.NewSite(node.NewVerifyingStore(store), root, gateway.SiteOptions{InjectLoader: true})).URL
	resp, body := get(t, url+"/")
	if !bytes.Equal(body, page) || resp.Header.Get("Etag") != `"`+leaf.String()+`"` {
		t.Errorf("a page carrying the loader: %q, Etag %q", body, resp.Header.Get("Etag"))
	}
}
