package serve

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hearthcdn/hearth/node"
)

// BenchmarkServeSmall serves a small file from a source, cold cache each
// time: the per-request cost of resolving, verifying and decoding.
func BenchmarkServeSmall(b *testing.B) {
	t := &testing.T{}
	s := newSite(t)
	src := &recordedSource{storeSource: &storeSource{g: s.store, kind: FromOrigin}}
	srv := &Server{Cache: newMemCache()}
	b.ResetTimer()
	for range b.N {
		srv.Cache = newMemCache() // blocks come from the source each time
		resp, err := srv.Serve(context.Background(), Request{Method: "GET", Root: s.root, Path: "/a/style.css", Header: http.Header{}, Sources: []Source{src}})
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := resp.WriteBody(context.Background(), &buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeBig serves a 1 MiB file: verification throughput.
func BenchmarkServeBig(b *testing.B) {
	t := &testing.T{}
	s := newSite(t)
	src := &recordedSource{storeSource: &storeSource{g: s.store, kind: FromOrigin}}
	b.SetBytes(int64(len(s.files["big.bin"])))
	srv := &Server{Cache: newMemCache()}
	b.ResetTimer()
	for range b.N {
		srv.Cache = newMemCache()
		resp, err := srv.Serve(context.Background(), Request{Method: "GET", Root: s.root, Path: "/big.bin", Header: http.Header{}, Sources: []Source{src}})
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := resp.WriteBody(context.Background(), &buf); err != nil {
			b.Fatal(err)
		}
	}
}

// recordedSource answers each distinct request from a recording, so that a
// benchmark measures the serving side only.
type recordedSource struct {
	*storeSource
	mu   sync.Mutex
	seen map[string][]node.Block
}

func (r *recordedSource) Open(ctx context.Context, req node.Request) (Stream, error) {
	key := req.Root.KeyString() + strings.Join(req.Path, "/")
	if req.Bytes != nil {
		key += req.Bytes.String()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string][]node.Block{}
	}
	if bs, ok := r.seen[key]; ok {
		return &sliceStream{blocks: bs}, nil
	}
	st, err := r.storeSource.Open(ctx, req)
	if err != nil {
		return nil, err
	}
	bs := st.(*sliceStream).blocks
	r.seen[key] = bs
	return &sliceStream{blocks: bs}, nil
}
