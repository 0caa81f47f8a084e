//go:build !js

package exchange

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// These tests run real pion peer connections over 127.0.0.1 only
// (TransportConfig.LoopbackOnly), signalled through an in-process hub that
// carries messages as JSON, as the relay does.

// sigHub delivers signalling messages between Transports in this process.
type sigHub struct {
	tune   func(*TransportConfig) // adjusts every node's config, if set
	mu     sync.Mutex
	nodes  map[string]*Transport
	offers map[string]int // offers received, by peer
}

func newSigHub() *sigHub {
	return &sigHub{nodes: make(map[string]*Transport), offers: make(map[string]int)}
}

func (h *sigHub) signaler(from string) Signaler {
	return SignalerFunc(func(ctx context.Context, to string, m SignalMsg) error {
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		var got SignalMsg
		if err := json.Unmarshal(b, &got); err != nil {
			return err
		}
		h.mu.Lock()
		t := h.nodes[to]
		if got.Type == SignalOffer {
			h.offers[to]++
		}
		h.mu.Unlock()
		if t == nil {
			return fmt.Errorf("no peer %s", to)
		}
		t.HandleSignal(from, got)
		return nil
	})
}

func (h *sigHub) offersTo(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.offers[id]
}

// rtcNode is a Transport on the hub.
func (h *sigHub) node(t testing.TB, id string, handler Handler) *Transport {
	t.Helper()
	cfg := TransportConfig{
		Signaler:     h.signaler(id),
		Handler:      handler,
		LoopbackOnly: true,
		Logger:       testLogger(t),
	}
	if h.tune != nil {
		h.tune(&cfg)
	}
	tr, err := NewTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.nodes[id] = tr
	h.mu.Unlock()
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// seeder starts a Server over st on the hub as id.
func (h *sigHub) seeder(t testing.TB, id string, st node.Getter, cfg ServerConfig) (*Server, *Transport) {
	srv := newTestServer(t, st, cfg)
	tr := h.node(t, id, srv)
	t.Cleanup(func() { _ = srv.Close() }) // after the transport: cleanups run last-in first-out
	return srv, tr
}

func TestRTCPythonDocs(t *testing.T) {
	const docs = "/usr/share/doc/python3.11/html"
	if _, err := os.Stat(docs); err != nil {
		t.Skipf("no Python docs: %v", err)
	}
	src, root := importDir(t, docs)
	hub := newSigHub()
	hub.seeder(t, "seeder", src, ServerConfig{})
	client := hub.node(t, "client", nil)
	st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f := newTestFetcher(t, FetcherConfig{Site: "docs", Store: st, Dialer: client, Finder: staticFinder{"seeder"}})
	start := time.Now()
	if _, err := f.Fetch(ctxT(t, 60*time.Second), node.Request{Root: root, Scope: node.ScopeAll}); err != nil {
		t.Fatal(err)
	}
	t.Logf("fetched the Python docs in %v", time.Since(start))
	files := compareTree(t, docs, st, root)
	if files < 1000 {
		t.Fatalf("compared only %d files", files)
	}
	// Every block of the seeder's DAG is in the client's store.
	n := 0
	for c, err := range src.AllKeys(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := st.Has(context.Background(), c); !ok {
			t.Errorf("block %s missing", c)
		}
		n++
	}
	t.Logf("%d files, %d blocks", files, n)
}

func TestRTCThreeSeedersOneCorrupt(t *testing.T) {
	dir := smallFilesDir(t, 100, 3000)
	data := writeRandomFile(t, filepath.Join(dir, "big.bin"), 12<<20, 7)
	st, root := importDir(t, dir)
	hub := newSigHub()
	bad, _ := hub.seeder(t, "bad", st, ServerConfig{})
	var lies atomic.Int64
	bad.setSendHook(func(_ string, b node.Block) node.Block {
		if b.Cid.Type() != node.CodecRaw {
			return b
		}
		lies.Add(1)
		d := bytes.Clone(b.Data)
		d[0] ^= 0x80
		return node.Block{Cid: b.Cid, Data: d}
	})
	hub.seeder(t, "good1", st, ServerConfig{})
	hub.seeder(t, "good2", st, ServerConfig{})
	client := hub.node(t, "client", nil)
	var mu sync.Mutex
	var banned []string
	f := newTestFetcher(t, FetcherConfig{
		Dialer: client, Finder: staticFinder{"bad", "good1", "good2"}, RangeSize: 1 << 20,
		OnBan: func(p string, err error) {
			mu.Lock()
			banned = append(banned, p)
			mu.Unlock()
			if !errors.Is(err, node.ErrCorrupt) {
				t.Errorf("%s banned for %v, want node.ErrCorrupt", p, err)
			}
		},
	})
	if _, err := f.Fetch(ctxT(t, 60*time.Second), node.Request{Root: root, Scope: node.ScopeAll}); err != nil {
		t.Fatal(err)
	}
	if got := readEntity(t, f.cfg.Store, root, "big.bin"); !bytes.Equal(got, data) {
		t.Fatal("big.bin differs")
	}
	compareTree(t, dir, f.cfg.Store, root)
	if lies.Load() == 0 {
		t.Fatal("the corrupt seeder was never asked for a leaf")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(banned) != 1 || banned[0] != "bad" {
		t.Fatalf("banned %v, want [bad]", banned)
	}
	for _, p := range f.Peers() {
		if p.ID == "bad" && (!p.Banned || p.Connected) {
			t.Fatalf("bad peer: %+v", p)
		}
	}
}

func TestRTCSeederKilledMidTransfer(t *testing.T) {
	dir := t.TempDir()
	data := writeRandomFile(t, filepath.Join(dir, "big.bin"), 24<<20, 8)
	st, root := importDir(t, dir)
	hub := newSigHub()
	victim, victimTr := hub.seeder(t, "victim", st, ServerConfig{})
	sent := make(chan struct{})
	var n atomic.Int64
	victim.setSendHook(func(_ string, b node.Block) node.Block {
		if n.Add(1) == 20 {
			close(sent)
		}
		return b
	})
	hub.seeder(t, "s2", st, ServerConfig{})
	hub.seeder(t, "s3", st, ServerConfig{})
	client := hub.node(t, "client", nil)
	f := newTestFetcher(t, FetcherConfig{Dialer: client, Finder: staticFinder{"victim", "s2", "s3"}, RangeSize: 1 << 20})
	errc := make(chan error, 1)
	go func() {
		_, err := f.Fetch(ctxT(t, 60*time.Second), node.Request{Root: root, Path: []string{"big.bin"}, Scope: node.ScopeEntity})
		errc <- err
	}()
	select {
	case <-sent: // the victim is mid-transfer: kill it
	case err := <-errc:
		t.Fatalf("fetch ended before the victim sent 20 blocks: %v", err)
	}
	_ = victimTr.Close()
	_ = victim.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := readEntity(t, f.cfg.Store, root, "big.bin"); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	var victimBytes int64
	for _, s := range victim.Stats() {
		victimBytes += s.BytesServed
	}
	if victimBytes >= int64(len(data)) {
		t.Fatalf("the victim served %d bytes: it was not killed mid-transfer", victimBytes)
	}
	t.Logf("victim served %d of %d bytes before it died", victimBytes, len(data))
}

func TestRTCNotFound(t *testing.T) {
	dir := smallFilesDir(t, 2, 100)
	st, root := importDir(t, dir)
	hub := newSigHub()
	hub.seeder(t, "seeder", st, ServerConfig{})
	client := hub.node(t, "client", nil)
	f := newTestFetcher(t, FetcherConfig{Dialer: client, Finder: staticFinder{"seeder"}})
	ctx := ctxT(t, 20*time.Second)
	unknown := node.Sum(node.CodecRaw, []byte("unknown"))
	if _, err := f.Fetch(ctx, node.Request{Root: unknown, Scope: node.ScopeAll}); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("err = %v, want node.ErrNotFound", err)
	}
	if _, err := f.Fetch(ctx, node.Request{Root: root, Scope: node.ScopeAll}); err != nil {
		t.Fatalf("the connection is still good: %v", err)
	}
	if ps := f.Peers(); len(ps) != 1 || ps[0].Banned || !ps[0].Connected {
		t.Fatalf("peers %+v", ps)
	}
}

func TestRTCFloodThrottled(t *testing.T) {
	dir := smallFilesDir(t, 20, 100)
	st, root := importDir(t, dir)
	hub := newSigHub()
	// A slow request rate makes the busy answers (and so the cut-off) independent
	// of how fast this machine serves.
	srv, _ := hub.seeder(t, "seeder", st, ServerConfig{MaxRequestsPerPeer: 4, RequestRate: 20, RequestBurst: 20, FloodLimit: 200, Penalty: time.Hour})
	reg := prometheus.NewRegistry()
	reg.MustRegister(srv)
	flooder := hub.node(t, "flooder", nil)
	ctx := ctxT(t, 30*time.Second)
	c, err := flooder.Dial(ctx, "seeder")
	if err != nil {
		t.Fatal(err)
	}
	cc := newClientConn("seeder", c, testLogger(t), nil)
	defer cc.close(nil)
	// Ignore SETTINGS: send n requests without waiting for answers, then
	// read every answer.
	flood := func(n int) (served, busy, cut int) {
		var streams []*stream
		for range n {
			s, err := cc.open(ctx, wireRequest{DAG: &node.Request{Root: root, Scope: node.ScopeAll}}, 1<<20)
			if err != nil {
				break // the server hung up on us
			}
			streams = append(streams, s)
		}
		for _, s := range streams {
			for {
				_, err := s.next(ctx, 10*time.Second)
				if err == nil {
					continue
				}
				switch {
				case errors.Is(err, ErrBusy):
					busy++
				case errors.Is(err, io.EOF):
					served++
				case errors.Is(err, ErrClosed):
					cut++
				default:
					t.Fatalf("request: %v", err)
				}
				break
			}
		}
		return served, busy, cut
	}
	// A burst under the flood limit: 4 at a time are served, the rest busy.
	served, busy, cut := flood(100)
	t.Logf("burst: %d served, %d busy, %d cut off", served, busy, cut)
	if served < 4 || busy < 50 || cut != 0 || served+busy != 100 {
		t.Fatalf("burst: %d served, %d busy, %d cut off", served, busy, cut)
	}
	// A flood: over the limit of busy answers, the server hangs up.
	served, busy, cut = flood(1000)
	t.Logf("flood: %d served, %d busy, %d cut off", served, busy, cut)
	if cut == 0 {
		t.Fatal("the flooder was never disconnected")
	}
	if st := srv.Stats(); len(st) != 1 || st[0].Busy < 200 {
		t.Fatalf("server stats %+v", st)
	}
	// The flooder is refused for a while; others are served.
	if _, err := flooder.Dial(ctx, "seeder"); !errors.Is(err, ErrRefused) {
		t.Fatalf("redial: err = %v, want ErrRefused", err)
	}
	client := hub.node(t, "client", nil)
	f := newTestFetcher(t, FetcherConfig{Dialer: client, Finder: staticFinder{"seeder"}})
	if _, err := f.Fetch(ctx, node.Request{Root: root, Scope: node.ScopeAll}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() == "hearth_exchange_peer_served_bytes_total" {
			for _, m := range mf.GetMetric() {
				if m.GetCounter().GetValue() > 0 {
					series++
				}
			}
		}
	}
	if series != 2 {
		t.Fatalf("%d per-peer served-bytes series, want 2 (flooder and client)", series)
	}
}

func TestRTCThousandFilesOneConnection(t *testing.T) {
	dir := smallFilesDir(t, 1000, 2000)
	st, root := importDir(t, dir)
	hub := newSigHub()
	srv, _ := hub.seeder(t, "seeder", st, ServerConfig{})
	client := hub.node(t, "client", nil)
	f := newTestFetcher(t, FetcherConfig{Dialer: client, Finder: staticFinder{"seeder"}})
	ctx := ctxT(t, 60*time.Second)
	paths := make(chan string)
	errc := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range paths {
				segs, _ := node.SplitPath(p)
				if _, err := f.Fetch(ctx, node.Request{Root: root, Path: segs, Scope: node.ScopeEntity}); err != nil {
					errc <- fmt.Errorf("%s: %w", p, err)
					return
				}
			}
		}()
	}
	start := time.Now()
	for i := range 1000 {
		paths <- fmt.Sprintf("d%02d/f%04d.bin", i%32, i)
	}
	close(paths)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	t.Logf("1000 files in %v", time.Since(start))
	if n := compareTree(t, dir, f.cfg.Store, root); n != 1000 {
		t.Fatalf("%d files", n)
	}
	if o := hub.offersTo("seeder"); o != 1 {
		t.Fatalf("%d offers: want one connection", o)
	}
	stats := srv.Stats()
	if len(stats) != 1 || stats[0].Requests < 1000 {
		t.Fatalf("server stats %+v", stats)
	}
}
