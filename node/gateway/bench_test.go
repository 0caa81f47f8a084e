//go:build linux

package gateway_test

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/node/importer"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// benchData returns a directory to replicate: the Python docs when
// installed (67 MB, ~1,100 files), else 64 MiB of generated files.
func benchData(b *testing.B) string {
	const pyDocs = "/usr/share/doc/python3.11/html"
	if _, err := os.Stat(pyDocs); err == nil {
		return pyDocs
	}
	dir := b.TempDir()
	files := map[string][]byte{}
	for i := range 256 {
		files[filepath.Join("d", string(rune('a'+i%26)), "f"+string(rune('0'+i%10))+string(rune('a'+i/10)))] = randBytes(uint64(i), 256<<10)
	}
	harness.WriteTree(b, dir, files)
	return dir
}

// BenchmarkReplication measures a seeder's replication (Replicator into a
// fresh pebble store, from a Trustless Gateway over pebble, on loopback)
// next to a plain HTTP download of the same files (http.FileServer, read
// and discarded) with the same concurrency, in the same run. Metrics:
// replicate-MB/s, plain-MB/s, pct-of-plain, blocks/s.
func BenchmarkReplication(b *testing.B) {
	dir := benchData(b)
	ctx := context.Background()
	origin, err := pebblestore.Open(b.TempDir(), pebblestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer origin.Close()
	root, err := importer.New(origin, importer.Options{}).ImportPath(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	gw := httptest.NewServer(gateway.NewTrustless(origin, gateway.TrustlessOptions{}))
	defer gw.Close()
	plain := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer plain.Close()
	var paths []string
	var fileBytes int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			paths = append(paths, "/"+filepath.ToSlash(rel))
			fileBytes += fi.Size()
		}
		return nil
	})
	const conc = 16
	client := gateway.NewHTTPClient()

	var plainDur, replDur, plainCPU, replCPU time.Duration
	var replBytes, replBlocks int64
	b.ResetTimer()
	for range b.N {
		// Plain HTTP: every file once, conc at a time.
		b.StopTimer()
		start, cpu0 := time.Now(), cpuTime()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= len(paths) {
						return
					}
					resp, err := client.Get(plain.URL + paths[i])
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
		plainDur += time.Since(start)
		plainCPU += cpuTime() - cpu0

		dst, err := pebblestore.Open(b.TempDir(), pebblestore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		fe, err := gateway.NewFetcher([]string{gw.URL}, gateway.FetcherOptions{Client: client})
		if err != nil {
			b.Fatal(err)
		}
		r := gateway.NewReplicator(fe, dst, gateway.ReplicatorOptions{Concurrency: conc})
		b.StartTimer()
		start, cpu0 = time.Now(), cpuTime()
		_, st, err := r.Replicate(ctx, root, nil)
		replDur += time.Since(start)
		replCPU += cpuTime() - cpu0
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		replBytes += st.FetchedBytes
		replBlocks += st.Fetched
		dst.Close()
		b.StartTimer()
	}
	b.StopTimer()
	mbps := func(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }
	rm, pm := mbps(replBytes, replDur), mbps(fileBytes*int64(b.N), plainDur)
	b.ReportMetric(rm, "replicate-MB/s")
	b.ReportMetric(pm, "plain-MB/s")
	b.ReportMetric(100*rm/pm, "pct-of-plain")
	b.ReportMetric(float64(replBlocks)/replDur.Seconds(), "blocks/s")
	// CPU time (user+system, both ends, this process) per run: what the
	// work costs whatever else the machine is doing.
	b.ReportMetric(float64(replCPU.Milliseconds())/float64(b.N), "replicate-cpu-ms")
	b.ReportMetric(float64(plainCPU.Milliseconds())/float64(b.N), "plain-cpu-ms")
}

// cpuTime returns the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
