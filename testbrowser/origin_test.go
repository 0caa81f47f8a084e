package testbrowser

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hearthjs "github.com/hearthcdn/hearth/js"
	"github.com/hearthcdn/hearth/js/jsconfig"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/origin"
)

// originStore is an in-memory origin.Store.
type originStore struct {
	*node.MemStore
	*node.MemMeta
}

// testOrigin is an origin serving a site, the browser client, and counters.
type testOrigin struct {
	t      testing.TB
	dir    string
	key    ed25519.PrivateKey
	site   node.SiteID
	store  originStore
	origin *origin.Origin
	srv    *httptest.Server
	URL    string

	// Bytes of response bodies sent, by kind of path.
	gateway, files, records, assets atomic.Int64

	corruptGateway atomic.Bool            // flip the last byte of every /ipfs/ body
	recordOverride atomic.Pointer[[]byte] // serve these bytes as the latest record

	mu       sync.Mutex
	requests []string
}

// startOrigin publishes files (slash paths) and serves them with the browser
// client configured by cfg (Site is filled in).
func startOrigin(t testing.TB, files map[string][]byte, cfg jsconfig.Config) *testOrigin {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	o := &testOrigin{t: t, dir: t.TempDir(), key: key,
		store: originStore{node.NewMemStore(), node.NewMemMeta()}}
	o.site = node.SiteIDOf(key.Public().(ed25519.PublicKey))
	o.write(files)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	o.origin, err = origin.New(origin.Config{Store: o.store, Key: key, Source: o.dir, Logger: quiet, InjectLoader: !cfg.NoInject})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.origin.Publish(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg.Site = o.site.String()
	client, err := hearthjs.New(cfg, hearthjs.Options{Assets: os.DirFS(assetsDir)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(hearthjs.Prefix, o.count(&o.assets, client))
	site := o.origin.Handler()
	mux.Handle("/", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		var sent atomic.Int64
		w := &countingWriter{ResponseWriter: rw, n: &sent}
		defer func() {
			o.mu.Lock()
			o.requests = append(o.requests, fmt.Sprintf("%s %s %v %dB", r.Method, r.URL.RequestURI(), time.Since(t0), sent.Load()))
			o.mu.Unlock()
		}()
		switch p := r.URL.Path; {
		case strings.HasPrefix(p, "/ipfs/"):
			if o.corruptGateway.Load() {
				o.count(&o.gateway, corrupting(site)).ServeHTTP(w, r)
				return
			}
			o.count(&o.gateway, site).ServeHTTP(w, r)
		case strings.HasPrefix(p, "/.well-known/hearth/"):
			if b := o.recordOverride.Load(); b != nil && strings.HasSuffix(p, "/record") {
				w.Header().Set("Content-Type", "application/vnd.hearth.root-record")
				w.Header().Set("Cache-Control", "no-cache")
				_, _ = w.Write(*b)
				return
			}
			o.count(&o.records, site).ServeHTTP(w, r)
		default:
			o.count(&o.files, site).ServeHTTP(w, r)
		}
	}))
	o.srv = httptest.NewServer(mux)
	o.URL = o.srv.URL
	t.Cleanup(func() {
		o.origin.Close()
		o.srv.CloseClientConnections()
		o.srv.Close()
	})
	return o
}

func (o *testOrigin) write(files map[string][]byte) {
	o.t.Helper()
	for name, b := range files {
		p := filepath.Join(o.dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			o.t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			o.t.Fatal(err)
		}
	}
}

// publish writes files and publishes the new version.
func (o *testOrigin) publish(files map[string][]byte) *node.RootRecord {
	o.t.Helper()
	o.write(files)
	rec, _, err := o.origin.Publish(context.Background())
	if err != nil {
		o.t.Fatal(err)
	}
	return rec
}

// resetCounts zeroes the byte counters and the request log.
func (o *testOrigin) resetCounts() {
	o.gateway.Store(0)
	o.files.Store(0)
	o.records.Store(0)
	o.assets.Store(0)
	o.mu.Lock()
	o.requests = nil
	o.mu.Unlock()
}

// requestLog returns the requests since the counts were last reset, each
// as "METHOD URI duration bytesB".
func (o *testOrigin) requestLog() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.requests...)
}

// sentByKind sums the body bytes of the logged requests by kind of file:
// the extension of the path's last element, "(html)" for a directory's
// index, "(blocks)" for a bare /ipfs/ CID.
func (o *testOrigin) sentByKind() map[string]int64 {
	sums := map[string]int64{}
	for _, l := range o.requestLog() {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(f[3], "B"), 10, 64)
		p, _, _ := strings.Cut(f[1], "?")
		kind := path.Ext(p)
		switch {
		case strings.HasPrefix(p, "/.well-known/"):
			kind = "(records)"
		case strings.HasPrefix(p, "/ipfs/") && strings.Count(p, "/") == 2:
			kind = "(blocks)"
		case kind == "":
			kind = "(html)"
		}
		sums[kind] += n
	}
	return sums
}

// count adds the body bytes h writes to n.
func (o *testOrigin) count(n *atomic.Int64, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&countingWriter{ResponseWriter: w, n: n}, r)
	})
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// corrupting serves h's response with the last body byte flipped: for a
// CAR, a byte of the last block's data, so the block no longer matches its
// CID while the CAR still parses.
func corrupting(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if len(body) > 0 && rec.Code == 200 {
			body[len(body)-1] ^= 0x01
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
}

// randomBytes returns n bytes that do not compress nor repeat.
func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// randomPNG returns a PNG of random pixels of about size bytes.
func randomPNG(t testing.TB, size int) []byte {
	side := int(math.Sqrt(float64(size) / 4))
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	copy(img.Pix, randomBytes(t, len(img.Pix)))
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pageSite returns a site whose index.html loads n assets of mixed kinds
// and sizes (some over one 256 KiB chunk), and the assets' paths.
func pageSite(t testing.TB, n int) (map[string][]byte, []string) { return pageSiteAt(t, n, "") }

// pageSiteAt is pageSite with every path under dir ("" or "v2/").
func pageSiteAt(t testing.TB, n int, dir string) (map[string][]byte, []string) {
	files := map[string][]byte{}
	var head, body strings.Builder
	var assets []string
	for i := range n {
		var p string
		switch i % 4 {
		case 0:
			p = fmt.Sprintf("/%scss/s%d.css", dir, i)
			files[p[1:]] = []byte(fmt.Sprintf("/* %x */ .c%d { color: #%06x }\n", randomBytes(t, 4000), i, i))
			fmt.Fprintf(&head, "<link rel=stylesheet href=%q>\n", p)
		case 1:
			p = fmt.Sprintf("/%sjs/m%d.js", dir, i)
			files[p[1:]] = []byte(fmt.Sprintf("/* %x */ window.loaded%d = true;\n", randomBytes(t, 6000), i))
			fmt.Fprintf(&head, "<script src=%q></script>\n", p)
		default:
			p = fmt.Sprintf("/%simg/p%d.png", dir, i)
			size := 20000 + i*15000
			if i%5 == 2 {
				size = 300 << 10 // two chunks
			}
			// A valid image, which the browser reads whole (it stops
			// reading one that does not decode).
			files[p[1:]] = randomPNG(t, size)
			fmt.Fprintf(&body, "<img src=%q>\n", p)
		}
		assets = append(assets, p)
	}
	files[dir+"index.html"] = []byte("<!doctype html><html><head><meta charset=utf-8>\n" +
		`<script src="/.hearth/hearth.js" defer></script>` + "\n" + head.String() +
		"</head><body><h1>hearth test page</h1>\n" + body.String() + "</body></html>\n")
	return files, assets
}

func totalSize(files map[string][]byte, paths []string) int64 {
	var n int64
	for _, p := range paths {
		n += int64(len(files[strings.TrimPrefix(p, "/")]))
	}
	return n
}
