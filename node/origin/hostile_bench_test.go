//go:build linux

package origin_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/hosting"
	"github.com/hearthcdn/hearth/node/origin"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// BenchmarkHostileRequests measures the CPU time (user+system, this
// process: server and client) of the cheapest-to-send, costliest-to-serve
// requests an outsider can make of an origin (pebble store, the server
// settings of hearth origin, loopback), each next to a plain GET of the
// same 4 MiB file in the same run. Metrics: cpu-µs/op (per request) and
// x-plain (that over the plain GET's). The goal is that none costs more
// than 10 ms of CPU beyond the bytes it sends back.
//
//   - plain-get: GET of a 4 MiB file (16 leaves), the baseline;
//   - ranges-6001: the same with a 6,001-range header (one byte in the
//     first leaf, one in the last, alternately; 64 KiB of header);
//   - ranges-16-leaves: 16 one-byte ranges, each in another leaf, in
//     reverse order;
//   - events-open: open a record event stream, read its first line, close;
//   - events-refused: the same from an address already holding 8 streams;
//   - bad-cid: /ipfs/ and a 60 KB string that is no CID;
//   - deep-path: a 60 KB path of 30,000 segments under the site and under
//     /ipfs/{root};
//   - if-none-match: 900 ETags (60 KB) in If-None-Match.
func BenchmarkHostileRequests(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := pebblestore.Open(b.TempDir(), pebblestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	big := make([]byte, 16*node.ChunkSize)
	r := mrand.New(mrand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	dir := b.TempDir()
	harness.WriteTree(b, dir, map[string][]byte{"index.html": []byte("<p>hi"), "big.bin": big, filepath.Join("a", "b.txt"): []byte("b")})
	log := slog.New(slog.DiscardHandler)
	o, err := origin.New(origin.Config{Store: st, Key: key, Source: dir, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	rec, _, err := o.Publish(ctx)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- hosting.Serve(ctx, ln, o.Handler(), log, o.Close) }()
	defer func() {
		cancel()
		<-served
	}()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()

	// do sends one request and reads the whole answer; it fails on an
	// unexpected status.
	do := func(b *testing.B, path string, want int, hdr ...string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != want {
			b.Fatalf("%s: status %d, %v; want %d", path[:min(len(path), 60)], resp.StatusCode, err, want)
		}
	}
	events := "/.well-known/hearth/" + o.Site().String() + "/events"
	// openEvents opens an event stream and reads its first line.
	openEvents := func(b *testing.B) (int, func()) {
		sctx, scancel := context.WithCancel(ctx)
		req, _ := http.NewRequestWithContext(sctx, http.MethodGet, base+events, nil)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
				b.Fatal(err)
			}
		} else {
			io.Copy(io.Discard, resp.Body)
		}
		return resp.StatusCode, func() {
			scancel()
			resp.Body.Close()
		}
	}

	alternate := func(n int, a, z int) string {
		var sb strings.Builder
		sb.WriteString("bytes=")
		for i := range n {
			off := a
			if i%2 == 1 {
				off = z
			}
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "%d-%d", off, off)
		}
		return sb.String()
	}
	many := alternate(6001, 0, len(big)-1)
	var spread strings.Builder
	spread.WriteString("bytes=")
	for i := 15; i >= 0; i-- {
		fmt.Fprintf(&spread, "%d-%d", i*node.ChunkSize+7, i*node.ChunkSize+7)
		if i > 0 {
			spread.WriteByte(',')
		}
	}
	badCID := "/ipfs/b" + strings.Repeat("a7", 30000)
	deep := strings.Repeat("/a", 30000)
	etags := strings.TrimSuffix(strings.Repeat(`"bafyreigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", `, 900), ", ")

	var plain float64 // cpu-µs/op of plain-get, this run
	measure := func(name string, op func(b *testing.B)) {
		b.Run(name, func(b *testing.B) {
			op(b) // warm: connections, caches
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				op(b)
			}
			us := float64((cpuTime() - cpu0).Microseconds()) / float64(b.N)
			b.ReportMetric(us, "cpu-µs/op")
			if name == "plain-get" {
				plain = us
			} else if plain > 0 {
				b.ReportMetric(us/plain, "x-plain")
			}
		})
	}
	measure("plain-get", func(b *testing.B) { do(b, "/big.bin", 200) })
	measure("ranges-6001", func(b *testing.B) {
		// Answered whole (200) past 16 ranges; a server without the bound
		// answers 206 with 6,001 parts.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/big.bin", nil)
		req.Header.Set("Range", many)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
	measure("ranges-16-leaves", func(b *testing.B) { do(b, "/big.bin", 206, "Range", spread.String()) })
	measure("events-open", func(b *testing.B) {
		code, stop := openEvents(b)
		stop()
		if code != 200 {
			b.Fatalf("status %d", code)
		}
	})
	b.Run("events-refused", func(b *testing.B) {
		var held []func()
		for range 8 {
			_, stop := openEvents(b)
			held = append(held, stop)
		}
		defer func() {
			for _, stop := range held {
				stop()
			}
		}()
		b.ResetTimer()
		cpu0 := cpuTime()
		var refused int
		for range b.N {
			code, stop := openEvents(b)
			if code == http.StatusServiceUnavailable {
				refused++
				stop()
			} else {
				held = append(held, stop) // no bound: the stream stays open, as an attacker's would
			}
		}
		us := float64((cpuTime() - cpu0).Microseconds()) / float64(b.N)
		b.ReportMetric(us, "cpu-µs/op")
		b.ReportMetric(float64(refused)/float64(b.N), "refused/op")
		if plain > 0 {
			b.ReportMetric(us/plain, "x-plain")
		}
	})
	measure("bad-cid", func(b *testing.B) { do(b, badCID, 400) })
	measure("deep-path-site", func(b *testing.B) { do(b, deep, 404) })
	measure("deep-path-ipfs", func(b *testing.B) { do(b, "/ipfs/"+rec.Root.String()+deep+"?format=car", 404) })
	measure("if-none-match", func(b *testing.B) { do(b, "/big.bin", 200, "If-None-Match", etags) })
}

// cpuTime returns the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
