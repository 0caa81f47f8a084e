//go:build !js

package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

// countingGetter counts the reads of each CID through g.
type countingGetter struct {
	g  node.Getter
	mu sync.Mutex
	n  map[cid.Cid]int
}

func (c *countingGetter) Get(ctx context.Context, k cid.Cid) ([]byte, error) {
	c.mu.Lock()
	c.n[k]++
	c.mu.Unlock()
	return c.g.Get(ctx, k)
}

// leafReads returns the reads of raw blocks (file leaves) since the last
// call, and the most reads of any one of them.
func (c *countingGetter) leafReads() (total, most int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, n := range c.n {
		if k.Type() == node.CodecRaw {
			total += n
			most = max(most, n)
		}
	}
	clear(c.n)
	return total, most
}

// countingSite serves the fixture's site over a counting, verifying getter.
func countingSite(t *testing.T, f *fixture) (string, *countingGetter) {
	t.Helper()
	cg := &countingGetter{g: node.NewVerifyingStore(f.store), n: map[cid.Cid]int{}}
	root := func(context.Context) (cid.Cid, error) { return f.root, nil }
	return newServer(t, gateway.NewSite(cg, root, gateway.SiteOptions{})).URL, cg
}

// alternating returns a Range header of n one-byte ranges alternating
// between offsets a and b, and the bytes they select in order.
func alternating(n int, a, b int, data []byte) (string, [][]byte) {
	var sb strings.Builder
	sb.WriteString("bytes=")
	var parts [][]byte
	for i := range n {
		off := a
		if i%2 == 1 {
			off = b
		}
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "%d-%d", off, off)
		parts = append(parts, data[off:off+1])
	}
	return sb.String(), parts
}

// A Range header of thousands of ranges is answered with the whole file,
// each leaf read once, instead of one leaf read and hash per range.
func TestSiteRangeCap(t *testing.T) {
	f := newFixture(t)
	url, cg := countingSite(t, f)
	big := f.files["big.bin"]
	leaves := (len(big) + node.ChunkSize - 1) / node.ChunkSize
	last := len(big) - 1

	for _, n := range []int{16 + 1, 6001} {
		rng, _ := alternating(n, 0, last, big)
		cg.leafReads()
		resp, body := get(t, url+"/big.bin", "Range", rng)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, big) {
			t.Fatalf("%d ranges: status %d, %d bytes; want 200 and the whole file", n, resp.StatusCode, len(body))
		}
		if total, most := cg.leafReads(); most > 1 || total > leaves {
			t.Errorf("%d ranges: %d leaf reads, one leaf read %d times; want each of the %d leaves at most once", n, total, most, leaves)
		}
	}
}

// Up to MaxRanges ranges are served as multipart/byteranges, in the order
// asked, and a leaf that several ranges come back to is read once.
func TestSiteRangesRevisitLeaves(t *testing.T) {
	f := newFixture(t)
	url, cg := countingSite(t, f)
	big := f.files["big.bin"]
	last := len(big) - 1
	for _, rng := range []string{"", ", ,"} {
		hdr, want := alternating(16, 0, last, big)
		hdr += rng // empty list elements do not count
		cg.leafReads()
		resp, body := get(t, url+"/big.bin", "Range", hdr)
		if resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("%d ranges: status %d, want 206", 16, resp.StatusCode)
		}
		if got := readParts(t, resp, body); len(got) != len(want) {
			t.Fatalf("%d parts, want %d", len(got), len(want))
		} else {
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("part %d: %x, want %x", i, got[i], want[i])
				}
			}
		}
		if total, most := cg.leafReads(); most > 1 || total != 2 {
			t.Errorf("%d leaf reads, one leaf read %d times; want the 2 leaves once each", total, most)
		}
	}
}

// readParts returns the bodies of a multipart/byteranges response.
func readParts(t *testing.T, resp *http.Response, body []byte) [][]byte {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("Content-Type %q: %v", resp.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var parts [][]byte
	for range 1000 {
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b)
	}
	t.Fatal("more than 1000 parts")
	return nil
}
