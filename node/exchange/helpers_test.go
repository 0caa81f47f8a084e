package exchange

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
)

// pipeConn is one end of an in-memory Conn pair.
type pipeConn struct {
	in     <-chan []byte
	out    chan<- []byte
	closed chan struct{}
	once   *sync.Once
}

// newPipe returns two connected Conns; each direction buffers depth
// messages, then writes block (back-pressure).
func newPipe(depth int) (Conn, Conn) {
	ab, ba := make(chan []byte, depth), make(chan []byte, depth)
	closed, once := make(chan struct{}), &sync.Once{}
	return &pipeConn{in: ba, out: ab, closed: closed, once: once},
		&pipeConn{in: ab, out: ba, closed: closed, once: once}
}

func (p *pipeConn) ReadMessage() ([]byte, error) {
	select {
	case m := <-p.in:
		return m, nil
	case <-p.closed:
		return nil, io.EOF
	}
}

func (p *pipeConn) WriteMessage(ctx context.Context, b []byte) error {
	if len(b) > MaxMessage {
		return fmt.Errorf("message of %d bytes", len(b))
	}
	cp := bytes.Clone(b)
	select {
	case <-p.closed:
		return ErrClosed
	default:
	}
	select {
	case p.out <- cp:
		return nil
	case <-p.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pipeConn) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// memNet connects Fetchers to Servers by peer ID over pipes.
type memNet struct {
	t       testing.TB
	mu      sync.Mutex
	servers map[string]*Server
	wrap    map[string]func(Conn) Conn // the server side's conn, as the server writes it
	conns   map[string][]Conn
	dials   map[string]int
	wg      sync.WaitGroup
}

func newMemNet(t testing.TB) *memNet {
	n := &memNet{t: t, servers: make(map[string]*Server), wrap: make(map[string]func(Conn) Conn), conns: make(map[string][]Conn), dials: make(map[string]int)}
	t.Cleanup(func() {
		n.mu.Lock()
		for _, cs := range n.conns {
			for _, c := range cs {
				_ = c.Close()
			}
		}
		n.mu.Unlock()
		n.wg.Wait()
	})
	return n
}

func (n *memNet) add(id string, s *Server) {
	n.mu.Lock()
	n.servers[id] = s
	n.mu.Unlock()
}

func (n *memNet) Dial(ctx context.Context, peer string) (Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.servers[peer]
	if s == nil {
		return nil, fmt.Errorf("no peer %s: %w", peer, ErrClosed)
	}
	if err := s.Admit("client"); err != nil {
		return nil, err
	}
	a, b := newPipe(256)
	n.conns[peer] = append(n.conns[peer], a, b)
	n.dials[peer]++
	var sc Conn = b
	if w := n.wrap[peer]; w != nil {
		sc = w(b)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = s.ServeConn(context.Background(), "client", sc)
	}()
	return a, nil
}

// addWrapped adds s, whose connections are wrapped by wrap before it
// serves them: a peer whose wire output is rewritten.
func (n *memNet) addWrapped(id string, s *Server, wrap func(Conn) Conn) {
	n.mu.Lock()
	n.servers[id] = s
	n.wrap[id] = wrap
	n.mu.Unlock()
}

// kill closes every connection to peer.
func (n *memNet) kill(peer string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.conns[peer] {
		_ = c.Close()
	}
	delete(n.servers, peer)
}

func (n *memNet) dialCount(peer string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dials[peer]
}

// staticFinder returns a fixed list of peers.
type staticFinder []string

func (s staticFinder) Find(_ context.Context, _ string, n int, exclude []string) ([]string, error) {
	ex := make(map[string]bool)
	for _, e := range exclude {
		ex[e] = true
	}
	var out []string
	for _, p := range s {
		if !ex[p] && len(out) < n {
			out = append(out, p)
		}
	}
	return out, nil
}

// importDir imports dir into a new MemStore and returns it and the root.
func importDir(t testing.TB, dir string) (*node.MemStore, cid.Cid) {
	t.Helper()
	st := node.NewMemStore()
	root, err := importer.New(st, importer.Options{}).ImportPath(context.Background(), dir)
	if err != nil {
		t.Fatalf("importing %s: %v", dir, err)
	}
	return st, root
}

// writeRandomFile writes size pseudo-random bytes (seeded) to path.
func writeRandomFile(t testing.TB, path string, size int, seed uint64) []byte {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i < size; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < size; j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

// smallFilesDir writes n files of size bytes into a new directory.
func smallFilesDir(t testing.TB, n, size int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		writeRandomFile(t, filepath.Join(dir, fmt.Sprintf("d%02d", i%32), fmt.Sprintf("f%04d.bin", i)), size, uint64(i)+1)
	}
	return dir
}

// readEntity reads the file at root/path from g.
func readEntity(t testing.TB, g node.Getter, root cid.Cid, path string) []byte {
	t.Helper()
	segs, err := node.SplitPath(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Resolve(context.Background(), g, root, segs)
	if err != nil {
		t.Fatalf("resolving %s: %v", path, err)
	}
	var buf bytes.Buffer
	if err := node.WriteFile(context.Background(), g, n, 0, n.FileSize, &buf); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return buf.Bytes()
}

// compareTree checks that every regular file under dir reads back
// byte-identical from g under root.
func compareTree(t testing.TB, dir string, g node.Getter, root cid.Cid) int {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Stat(p) // follow symlinks, as the importer does
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if got := readEntity(t, g, root, filepath.ToSlash(rel)); !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from the original's %d", rel, len(got), len(want))
		}
		files++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// ctxT returns a context that ends with the test or after d.
func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newTestServer returns a Server over st that closes with the test.
func newTestServer(t testing.TB, st node.Getter, cfg ServerConfig) *Server {
	t.Helper()
	cfg.Store = st
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newTestFetcher returns a Fetcher that closes with the test.
func newTestFetcher(t testing.TB, cfg FetcherConfig) *Fetcher {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = node.NewMemStore()
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	f, err := NewFetcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}
