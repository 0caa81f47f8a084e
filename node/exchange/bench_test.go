//go:build !js

package exchange

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// Benchmarks: each measures the exchange over real pion on 127.0.0.1 and,
// in the same run, its baseline over plain HTTP on 127.0.0.1, and reports
// both and their ratio. Run them with
//
//	go test -run '^$' -bench . -benchtime 1x ./node/exchange/

const mib = 1 << 20

// udpRcvbufErrors reads the kernel's count of UDP datagrams dropped for a
// full socket receive buffer (/proc/net/snmp, Udp: RcvbufErrors).
func udpRcvbufErrors() int64 {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return -1
	}
	defer f.Close()
	var head []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if head == nil {
			head = fields
			continue
		}
		for i, h := range head {
			if h == "RcvbufErrors" && i < len(fields) {
				v, _ := strconv.ParseInt(fields[i], 10, 64)
				return v
			}
		}
	}
	return -1
}

// httpServe serves files by path on 127.0.0.1 and returns the base URL.
func httpServe(b *testing.B, files map[string][]byte) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(d))
	})}
	go srv.Serve(ln) //nolint:errcheck // ends with Close below
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// httpGet fetches url with c and returns the body's length.
func httpGet(b *testing.B, c *http.Client, url string) int64 {
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d, %v", url, resp.StatusCode, err)
	}
	return n
}

// bigFile imports a file of size random bytes and returns its store, the
// root of its directory and the bytes.
func bigFile(b *testing.B, size int) (*node.MemStore, cid.Cid, []byte) {
	b.Helper()
	dir := b.TempDir()
	data := writeRandomFile(b, filepath.Join(dir, "big.bin"), size, 42)
	st, root := importDir(b, dir)
	return st, root, data
}

// pionFetch fetches big.bin under root with a fresh Fetcher over client,
// connected beforehand to every seeder (connection setup is not timed),
// and returns the time the transfer took.
func pionFetch(b *testing.B, client *Transport, seeders []string, root cid.Cid, size int) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f, err := NewFetcher(FetcherConfig{Store: node.NewMemStore(), Dialer: client, Finder: staticFinder(seeders), Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	// Warm up: connect to every seeder (the root block, asked of each).
	f.AddPeers(seeders...)
	var wg sync.WaitGroup
	for range seeders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.Fetch(ctx, node.Request{Root: root, Scope: node.ScopeBlock}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	start := time.Now()
	res, err := f.Fetch(ctx, node.Request{Root: root, Path: []string{"big.bin"}, Scope: node.ScopeEntity})
	d := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if res.End-res.Start != uint64(size) {
		b.Fatalf("fetched %d bytes", res.End-res.Start)
	}
	return d
}

func benchBigFile(b *testing.B, seeders int) {
	const size = 256 * mib
	st, root, data := bigFile(b, size)
	url := httpServe(b, map[string][]byte{"big.bin": data}) + "/big.bin"
	hub := newSigHub()
	var ids []string
	for i := range seeders {
		id := fmt.Sprintf("seeder%d", i)
		hub.seeder(b, id, st, ServerConfig{})
		ids = append(ids, id)
	}
	client := hub.node(b, "client", nil)
	hc := &http.Client{}
	httpGet(b, hc, url) // warm: the connection and the page cache
	var tHTTP, tPion time.Duration
	drops := udpRcvbufErrors()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if n := httpGet(b, hc, url); n != size {
			b.Fatalf("HTTP: %d bytes", n)
		}
		tHTTP += time.Since(start)
		tPion += pionFetch(b, client, ids, root, size)
	}
	b.StopTimer()
	drops = udpRcvbufErrors() - drops
	mibs := func(d time.Duration) float64 { return float64(b.N) * size / mib / d.Seconds() }
	b.ReportMetric(mibs(tPion), "pion-MiB/s")
	b.ReportMetric(mibs(tHTTP), "http-MiB/s")
	b.ReportMetric(mibs(tPion)/mibs(tHTTP), "pion/http")
	b.ReportMetric(float64(drops), "udp-rcvbuf-drops")
}

// (a) One pion connection on loopback, 256 MiB, vs plain HTTP.
func BenchmarkOnePeer256MiB(b *testing.B) { benchBigFile(b, 1) }

// (b) The same from three seeders at once.
func BenchmarkThreeSeeders256MiB(b *testing.B) { benchBigFile(b, 3) }

// (c) 1,000 files of 8 KiB, by path, vs HTTP/1.1 keep-alive (six
// connections, as a browser opens, and one).
func BenchmarkThousandFiles8KiB(b *testing.B) {
	const n, size, workers = 1000, 8 << 10, 32
	dir := b.TempDir()
	files := make(map[string][]byte, n)
	paths := make([]string, n)
	for i := range n {
		p := fmt.Sprintf("d%02d/f%04d.bin", i%32, i)
		paths[i] = p
		files[p] = writeRandomFile(b, filepath.Join(dir, p), size, uint64(i)+1)
	}
	st, root := importDir(b, dir)
	base := httpServe(b, files)
	hub := newSigHub()
	hub.seeder(b, "seeder", st, ServerConfig{})
	client := hub.node(b, "client", nil)

	parallel := func(w int, get func(p string)) time.Duration {
		ch := make(chan string)
		var wg sync.WaitGroup
		start := time.Now()
		for range w {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for p := range ch {
					get(p)
				}
			}()
		}
		for _, p := range paths {
			ch <- p
		}
		close(ch)
		wg.Wait()
		return time.Since(start)
	}
	httpRun := func(conns int) time.Duration {
		hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: conns, MaxIdleConnsPerHost: conns}}
		defer hc.CloseIdleConnections()
		for range conns { // open the connections before timing
			httpGet(b, hc, base+"/"+paths[0])
		}
		return parallel(conns, func(p string) { httpGet(b, hc, base+"/"+p) })
	}
	var tHTTP6, tHTTP1, tPion time.Duration
	b.ResetTimer()
	for range b.N {
		tHTTP6 += httpRun(6)
		tHTTP1 += httpRun(1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		f, err := NewFetcher(FetcherConfig{Store: node.NewMemStore(), Dialer: client, Finder: staticFinder{"seeder"}, Logger: testLogger(b)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Fetch(ctx, node.Request{Root: root, Scope: node.ScopeBlock}); err != nil { // connect
			b.Fatal(err)
		}
		tPion += parallel(workers, func(p string) {
			segs, _ := node.SplitPath(p)
			if _, err := f.Fetch(ctx, node.Request{Root: root, Path: segs, Scope: node.ScopeEntity}); err != nil {
				b.Error(err)
			}
		})
		_ = f.Close()
		cancel()
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(b.N) }
	b.ReportMetric(ms(tPion), "pion-ms")
	b.ReportMetric(ms(tHTTP6), "http6-ms")
	b.ReportMetric(ms(tHTTP1), "http1-ms")
	b.ReportMetric(ms(tPion)/ms(tHTTP6), "pion/http6")
	b.ReportMetric(ms(tPion)/ms(tHTTP1), "pion/http1")
}

// (d) From asking the finder to the first verified byte of an 8 KiB file,
// over a new connection with trickle ICE, vs a new HTTP connection's GET.
func BenchmarkFirstVerifiedByte(b *testing.B) {
	const rounds = 25
	dir := b.TempDir()
	data := writeRandomFile(b, filepath.Join(dir, "f.bin"), 8<<10, 5)
	st, root := importDir(b, dir)
	base := httpServe(b, map[string][]byte{"f.bin": data})
	hub := newSigHub()
	hub.seeder(b, "seeder", st, ServerConfig{})
	var pion, web []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range rounds {
			client := hub.node(b, fmt.Sprintf("client%d", i), nil)
			f, err := NewFetcher(FetcherConfig{Store: node.NewMemStore(), Dialer: client, Finder: staticFinder{"seeder"}, Logger: testLogger(b)})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			start := time.Now() // Fetch asks the Finder, dials, requests, verifies
			res, err := f.Fetch(ctx, node.Request{Root: root, Path: []string{"f.bin"}, Scope: node.ScopeEntity})
			d := time.Since(start)
			cancel()
			if err != nil || res.End != uint64(len(data)) {
				b.Fatalf("fetch: %v", err)
			}
			pion = append(pion, d)
			_ = f.Close()
			_ = client.Close()

			hc := &http.Client{Transport: &http.Transport{}}
			start = time.Now()
			httpGet(b, hc, base+"/f.bin")
			web = append(web, time.Since(start))
			hc.CloseIdleConnections()
		}
	}
	b.StopTimer()
	slices.Sort(pion)
	slices.Sort(web)
	ms := func(d time.Duration) float64 { return d.Seconds() * 1000 }
	b.ReportMetric(ms(pion[len(pion)/2]), "pion-median-ms")
	b.ReportMetric(ms(pion[len(pion)*9/10]), "pion-p90-ms")
	b.ReportMetric(ms(web[len(web)/2]), "http-median-ms")
	b.ReportMetric(ms(pion[len(pion)/2])/ms(web[len(web)/2]), "pion/http")
}

// sinkHandler counts what a connection receives; a 1-byte message ends a
// round and reports the count.
type sinkHandler struct{ got chan int64 }

func (sinkHandler) Admit(string) error { return nil }
func (sinkHandler) Release(string)     {}
func (h sinkHandler) ServeConn(ctx context.Context, _ string, c Conn) error {
	var n int64
	for {
		b, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if len(b) == 1 {
			h.got <- n
			n = 0
			continue
		}
		n += int64(len(b))
	}
}

// The data channel alone (no protocol, no verification): 128 MiB of
// 64 KiB messages, with the kernel's default UDP receive buffer and with
// ours, vs the same bytes over HTTP. It shows the ceiling of pion on this
// machine and the UDP receive-buffer drops the default buffer causes.
func BenchmarkDataChannelRaw(b *testing.B) {
	const total = 128 * mib
	data := make([]byte, total)
	url := httpServe(b, map[string][]byte{"x": data}) + "/x"
	hc := &http.Client{}
	httpGet(b, hc, url)
	for _, buf := range []int{208 << 10, 4 << 20} {
		b.Run(fmt.Sprintf("rcvbuf=%dKiB", buf>>10), func(b *testing.B) {
			hub := newSigHub()
			hub.tune = func(c *TransportConfig) { c.UDPBuffer = buf }
			h := sinkHandler{got: make(chan int64, 1)}
			hub.node(b, "sink", h)
			client := hub.node(b, "client", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			c, err := client.Dial(ctx, "sink")
			if err != nil {
				b.Fatal(err)
			}
			msg := make([]byte, MaxMessage)
			var tPion, tHTTP time.Duration
			drops := udpRcvbufErrors()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				httpGet(b, hc, url)
				tHTTP += time.Since(start)
				start = time.Now()
				for sent := 0; sent < total; sent += len(msg) {
					if err := c.WriteMessage(ctx, msg); err != nil {
						b.Fatal(err)
					}
				}
				if err := c.WriteMessage(ctx, []byte{1}); err != nil {
					b.Fatal(err)
				}
				if n := <-h.got; n != total {
					b.Fatalf("received %d bytes", n)
				}
				tPion += time.Since(start)
			}
			b.StopTimer()
			drops = udpRcvbufErrors() - drops
			mibs := func(d time.Duration) float64 { return float64(b.N) * total / mib / d.Seconds() }
			b.ReportMetric(mibs(tPion), "pion-MiB/s")
			b.ReportMetric(mibs(tHTTP), "http-MiB/s")
			b.ReportMetric(mibs(tPion)/mibs(tHTTP), "pion/http")
			b.ReportMetric(float64(drops), "udp-rcvbuf-drops")
		})
	}
}
