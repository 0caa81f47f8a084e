package hosting_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/node/hosting"
)

func TestServeRoutesAndShutdown(t *testing.T) {
	m := hosting.NewMetrics()
	m.Served(gateway.KindRaw, 200, 1234)
	m.Stored(3, 300)
	var ready atomic.Bool
	streamStarted := make(chan struct{})
	closed := make(chan struct{})
	h := hosting.Routes{
		Trustless: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ipfs") }),
		Records: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// A long-lived stream, ended only by the shutdown hook.
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			close(streamStarted)
			select {
			case <-closed:
			case <-r.Context().Done():
			}
		}),
		Site:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "site") }),
		Publish:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "publish") }),
		Dashboard: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "dashboard") }),
		Metrics:   m.Handler(),
		Health:    func() (bool, any) { r := ready.Load(); return r, map[string]bool{"ready": r} },
	}.Handler()

	addrFile := filepath.Join(t.TempDir(), "addr")
	ln, err := hosting.Listen("127.0.0.1:0", addrFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(addrFile)
	if err != nil || strings.TrimSpace(string(b)) != ln.Addr().String() {
		t.Fatalf("address file %q, %v", b, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- hosting.Serve(ctx, ln, h, slog.Default(), func() { close(closed) })
	}()
	base := "http://" + ln.Addr().String()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for path, want := range map[string]string{"/ipfs/x": "ipfs", "/": "site", "/a/b": "site",
		hosting.DashboardPrefix: "dashboard", hosting.DashboardPrefix + "events": "dashboard"} {
		if code, body := get(path); code != 200 || body != want {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}
	if resp, err := http.Post(base+"/.well-known/hearth/x/publish", "application/vnd.ipld.car", nil); err != nil {
		t.Fatal(err)
	} else if b, _ := io.ReadAll(resp.Body); string(b) != "publish" {
		t.Errorf("publish: %q", b)
	}
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, `"ready":false`) {
		t.Errorf("healthz: %d %q", code, body)
	}
	ready.Store(true)
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz when ready: %d", code)
	}
	_, metrics := get("/metrics")
	ms, err := harness.ParseMetrics(metrics)
	if err != nil {
		t.Fatal(err)
	}
	for series, want := range map[string]float64{
		`hearth_http_requests_total{code="200",kind="raw"}`: 1,
		`hearth_http_response_bytes_total{kind="raw"}`:      1234,
		"hearth_replicated_blocks_total":                    3,
		"hearth_replicated_bytes_total":                     300,
	} {
		if ms[series] != want {
			t.Errorf("%s = %v, want %v", series, ms[series], want)
		}
	}

	// A stream that never ends does not hold up shutdown.
	go func() {
		resp, err := http.Get(base + "/.well-known/hearth/x/events")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	<-streamStarted
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %s", d)
	}
}
