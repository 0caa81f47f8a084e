//go:build linux

package harness_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
)

// BenchmarkSeederRSS100Clients measures a seeder process's memory while
// 100 concurrent clients fetch from it: site files, raw blocks and
// entity CARs of random files of the Python docs, each client issuing b.N
// requests. Metrics: peak-RSS-MiB (VmRSS sampled every 10 ms during the
// load), idle-RSS-MiB (before it), req/s, MB/s served.
func BenchmarkSeederRSS100Clients(b *testing.B) {
	if _, err := os.Stat(pyDocs); err != nil {
		b.Skipf("python3-doc is not installed (%v)", err)
	}
	key := harness.NewKey(b)
	origin := harness.StartOrigin(b, key, pyDocs)
	s := harness.StartSeeder(b, "seeder", key.Site, origin.URL())
	s.WaitMetric("hearth_pinned_sequence", time.Minute, func(v float64) bool { return v == 1 })
	origin.Stop() // the seeder alone serves

	ms, root := harness.ImportDir(b, pyDocs)
	type target struct{ path, leaf string }
	var targets []target
	var walk func(n *node.Node, path string)
	walk = func(n *node.Node, path string) {
		for e, err := range node.Entries(context.Background(), ms, n) {
			if err != nil {
				b.Fatal(err)
			}
			c, _, err := node.GetNode(context.Background(), ms, e.Cid)
			if err != nil {
				b.Fatal(err)
			}
			switch {
			case c.IsDir():
				walk(c, path+"/"+e.Name)
			case c.IsFile():
				leaf := e.Cid
				if len(c.Links) > 0 {
					leaf = c.Links[0].Cid
				}
				targets = append(targets, target{path + "/" + e.Name, leaf.String()})
			}
		}
	}
	rn, _, err := node.GetNode(context.Background(), ms, root)
	if err != nil {
		b.Fatal(err)
	}
	walk(rn, "")

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100, DisableCompression: true}, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	idle, _, err := s.MemStatus()
	if err != nil {
		b.Fatal(err)
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, err := s.MemStatus(); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	})
	var served, reqs atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var clients sync.WaitGroup
	for c := range 100 {
		clients.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 1))
			for i := range b.N {
				t := targets[r.IntN(len(targets))]
				var url string
				switch i % 3 {
				case 0:
					url = s.URL() + t.path
				case 1:
					url = s.URL() + "/ipfs/" + t.leaf + "?format=raw"
				default:
					url = fmt.Sprintf("%s/ipfs/%s%s?format=car&dag-scope=entity", s.URL(), root, t.path)
				}
				resp, err := client.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("%s: %d", url, resp.StatusCode)
					return
				}
				served.Add(n)
				reqs.Add(1)
			}
		})
	}
	clients.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	sampler.Wait()
	_, hwm, _ := s.MemStatus()
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(idle)/(1<<20), "idle-RSS-MiB")
	b.ReportMetric(float64(hwm)/(1<<20), "lifetime-peak-RSS-MiB")
	b.ReportMetric(float64(reqs.Load())/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(served.Load())/1e6/elapsed.Seconds(), "served-MB/s")
}
