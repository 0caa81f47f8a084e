package testbrowser

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node/hosting"
)

// envDashboardShot names the file TestDashboard saves its screenshot to
// (default: one in the test's temporary directory, logged).
const envDashboardShot = "HEARTH_DASHBOARD_SCREENSHOT"

// TestDashboard: a real origin with its dashboard behind a token, and a
// real seeder whose /metrics the dashboard reads. While clients fetch the
// site from both and hold a record event stream open, Chromium loads the
// dashboard; when the traffic stops, every figure the page shows equals
// the one /metrics serves (the origin's, and the seeder's for the bytes
// it served), and the page is saved as a PNG screenshot. Requests
// without the token, with a wrong one, or through a proxy are refused.
func TestDashboard(t *testing.T) {
	needBrowser(t)
	src := filepath.Join(t.TempDir(), "site")
	files := map[string][]byte{
		"index.html": []byte(`<!doctype html><title>home</title><p>home</p>`),
		"style.css":  []byte("p { color: #333 }"),
	}
	for i := range 4 {
		b := make([]byte, 300<<10+i*50<<10)
		_, _ = rand.Read(b)
		files[fmt.Sprintf("img/%d.bin", i)] = b
	}
	harness.WriteTree(t, src, files)

	const token = "dashboard-test-token"
	key := harness.NewKey(t)
	origin := harness.StartOrigin(t, key, src, "--dashboard-token", token)
	seeder := harness.StartSeeder(t, "seeder", key.Site, origin.URL())
	seeder.WaitMetric("hearth_pinned_sequence", 2*time.Minute, func(v float64) bool { return v == 1 })
	// The dashboard reads the seeder's metrics from the origin's start on.
	origin.Stop()
	origin.Restart("--dashboard-peer", seeder.URL())
	dashURL := origin.URL() + hosting.DashboardPrefix

	// Refused: no token, a wrong one, and the token's cookie name with a
	// wrong value; a loopback client gets no exemption in token mode.
	for _, c := range []struct{ path, cookie string }{
		{"", ""}, {"?token=wrong", ""}, {"events", ""}, {"snapshot.json", "wrong"},
	} {
		req, _ := http.NewRequest("GET", dashURL+c.path, nil)
		if c.cookie != "" {
			req.AddCookie(&http.Cookie{Name: "hearth_dashboard", Value: c.cookie})
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s (cookie %q): %d, want 403", c.path, c.cookie, resp.StatusCode)
		}
	}

	// Traffic: site files from the origin and the seeder, and a visitor's
	// record event stream held open.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streamCtx, closeStream := context.WithCancel(ctx)
	defer closeStream()
	req, _ := http.NewRequestWithContext(streamCtx, "GET", origin.URL()+"/.well-known/hearth/"+key.Site.String()+"/events", nil)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w, base := range []string{origin.URL(), seeder.URL(), seeder.URL()} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; trafficCtx.Err() == nil; i++ {
				name := fmt.Sprintf("img/%d.bin", i%4)
				if i%5 == 0 {
					name = "index.html"
				}
				r, err := http.NewRequestWithContext(trafficCtx, "GET", base+"/"+name, nil)
				if err != nil {
					return
				}
				resp, err := http.DefaultClient.Do(r)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				select {
				case <-trafficCtx.Done():
				case <-time.After(time.Duration(50+100*w) * time.Millisecond):
				}
			}
		}()
	}

	b := newBrowser(t)
	tab := b.ctx
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1280, 980)); err != nil {
		t.Fatal(err)
	}
	navigate(t, tab, dashURL+"?token="+token)
	waitFor(t, tab, "the dashboard's first samples", `document.body.dataset.sampled !== undefined`, 30*time.Second)
	// Six more samples of traffic on the plots.
	n0 := eval[int](t, tab, `samples.length`)
	waitFor(t, tab, "six samples during the traffic", fmt.Sprintf(`samples.length >= %d`, n0+6), 30*time.Second)
	stopTraffic()
	wg.Wait()

	// Once the page has a sample taken after the traffic ended, its
	// figures are /metrics'.
	type shown struct {
		Static, Peer, Streams, Clients, Seq, Published, Offload string
		Bytes, Requests                                         map[string]string
	}
	const read = `(() => {
		const v = (id) => document.getElementById(id).dataset.value;
		const by = (attr) => Object.fromEntries([...document.querySelectorAll('[data-' + attr + ']')].map((e) => [e.dataset.kind, e.dataset[attr]]));
		return {Static: v('origin-static'), Peer: v('peer-bytes'), Streams: v('streams'), Clients: v('clients'),
			Seq: v('seq'), Published: v('published'), Offload: v('offload'), Bytes: by('bytes'), Requests: by('requests')};
	})()`
	var last string
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		om, err := origin.Metrics()
		if err != nil {
			return false, err.Error()
		}
		sm, err := seeder.Metrics()
		if err != nil {
			return false, err.Error()
		}
		s, err := evalErr[shown](tab, read)
		if err != nil {
			return false, err.Error()
		}
		var diffs []string
		check := func(what, got string, want float64) {
			var g float64
			if _, err := fmt.Sscan(got, &g); err != nil || math.Abs(g-want) > 1e-9*math.Max(1, want) {
				diffs = append(diffs, fmt.Sprintf("%s: page %q, /metrics %v", what, got, want))
			}
		}
		bytesOf := func(m map[string]float64, kind string) float64 {
			return m[`hearth_http_response_bytes_total{kind="`+kind+`"}`]
		}
		var static, peer float64
		for _, k := range []string{"file", "raw", "car"} {
			static += bytesOf(om, k)
			peer += bytesOf(sm, k)
		}
		for _, k := range []string{"file", "raw", "car", "record", "records"} {
			check(k+" bytes", s.Bytes[k], bytesOf(om, k))
			var reqs float64
			for series, v := range om {
				if strings.HasPrefix(series, "hearth_http_requests_total{") && strings.Contains(series, `kind="`+k+`"`) {
					reqs += v
				}
			}
			check(k+" requests", s.Requests[k], reqs)
		}
		check("origin static bytes", s.Static, static)
		check("seeder bytes", s.Peer, peer)
		check("offload", s.Offload, peer/(peer+static))
		check("streams", s.Streams, om["hearth_event_streams_open"])
		check("clients", s.Clients, om["hearth_event_stream_clients"])
		check("record sequence", s.Seq, om["hearth_record_sequence"])
		check("roots published", s.Published, om["hearth_published_roots_total"])
		if om["hearth_event_streams_open"] < 1 || peer == 0 || bytesOf(om, "file") == 0 {
			diffs = append(diffs, fmt.Sprintf("no traffic seen: %v streams, %v seeder bytes", om["hearth_event_streams_open"], peer))
		}
		last = strings.Join(diffs, "; ")
		return len(diffs) == 0, last
	})
	t.Logf("dashboard agrees with /metrics")

	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	out := os.Getenv(envDashboardShot)
	if out == "" {
		out = filepath.Join(t.TempDir(), "dashboard.png")
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(png))
}
