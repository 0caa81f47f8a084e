//go:build !js

package gateway_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/node/gateway"
)

// streamRecorder is a ResponseWriter for a handler running in another
// goroutine: it reports the status once, then discards the body.
type streamRecorder struct {
	hdr    http.Header
	once   sync.Once
	status chan int
}

func (s *streamRecorder) Header() http.Header { return s.hdr }
func (s *streamRecorder) WriteHeader(code int) {
	s.once.Do(func() { s.status <- code })
}
func (s *streamRecorder) Write(p []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return len(p), nil
}
func (s *streamRecorder) Flush() {}

// openStream starts an event stream request from remote to h and returns
// its status and headers once written, and a function that ends the stream
// and waits for its handler to return.
func openStream(t *testing.T, h http.Handler, path, remote string) (int, http.Header, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	req.RemoteAddr = remote
	w := &streamRecorder{hdr: http.Header{}, status: make(chan int, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, req)
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	select {
	case code := <-w.status:
		return code, w.hdr, stop
	case <-done:
		t.Fatalf("%s: the handler returned without a status", remote)
	}
	return 0, nil, stop
}

// wantRefused checks a 503 with a Retry-After.
func wantRefused(t *testing.T, what string, code int, hdr http.Header) {
	t.Helper()
	if code != http.StatusServiceUnavailable {
		t.Fatalf("%s: status %d, want 503", what, code)
	}
	if ra := hdr.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("%s: Retry-After %q", what, ra)
	}
}

// Event streams are bounded per client, an IPv6 client counted by its /64
// prefix; a stream that ends frees its place.
func TestEventStreamsPerIP(t *testing.T) {
	_, site := newKey(t)
	h := gateway.NewRecords(gateway.RecordsOptions{Streams: gateway.StreamLimits{PerIP: 2, Total: 100}}, newFeed(t, site))
	defer h.Close()
	path := gateway.EventsPath(site)
	open := func(remote string) (int, http.Header, func()) { return openStream(t, h, path, remote) }

	var first func()
	for i, remote := range []string{"192.0.2.1:1000", "192.0.2.1:1001", "192.0.2.2:1000",
		"[2001:db8::1]:1000", "[2001:db8::2]:1000", "[2001:db8:0:1::1]:1000"} {
		code, _, stop := open(remote)
		if code != http.StatusOK {
			t.Fatalf("%s: status %d, want 200", remote, code)
		}
		if i == 0 {
			first = stop
		}
	}
	for _, remote := range []string{"192.0.2.1:1002", "[::ffff:192.0.2.1]:1003", "[2001:db8::ffff]:1000", "[2001:db8::3%eth0]:1000"} {
		code, hdr, _ := open(remote)
		wantRefused(t, remote, code, hdr)
	}
	first()
	if code, _, _ := open("192.0.2.1:1004"); code != http.StatusOK {
		t.Fatalf("after a stream ended: status %d, want 200", code)
	}
}

// Event streams are bounded in all, whoever opens them.
func TestEventStreamsTotal(t *testing.T) {
	_, site := newKey(t)
	h := gateway.NewRecords(gateway.RecordsOptions{Streams: gateway.StreamLimits{PerIP: 10, Total: 3}}, newFeed(t, site))
	defer h.Close()
	path := gateway.EventsPath(site)
	var stops []func()
	for _, remote := range []string{"192.0.2.1:1", "192.0.2.2:1", "[2001:db8::1]:1"} {
		code, _, stop := openStream(t, h, path, remote)
		if code != http.StatusOK {
			t.Fatalf("%s: status %d, want 200", remote, code)
		}
		stops = append(stops, stop)
	}
	code, hdr, _ := openStream(t, h, path, "192.0.2.9:1")
	wantRefused(t, "past the total", code, hdr)
	stops[1]()
	if code, _, _ := openStream(t, h, path, "192.0.2.9:1"); code != http.StatusOK {
		t.Fatalf("after a stream ended: status %d, want 200", code)
	}
}

// Over real connections, the default bound refuses the ninth stream from
// one address with 503 and Retry-After.
func TestEventStreamsDefaultOverHTTP(t *testing.T) {
	_, site := newKey(t)
	h := gateway.NewRecords(gateway.RecordsOptions{}, newFeed(t, site))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0}}
	defer client.CloseIdleConnections()
	for i := range gateway.DefaultStreamsPerIP + 1 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+gateway.EventsPath(site), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if i < gateway.DefaultStreamsPerIP {
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			if resp.StatusCode != http.StatusOK || err != nil || !strings.HasPrefix(line, "retry:") {
				t.Fatalf("stream %d: status %d, first line %q, %v", i+1, resp.StatusCode, line, err)
			}
			continue
		}
		wantRefused(t, "stream past the bound", resp.StatusCode, resp.Header)
	}
}
