//go:build !js

package gateway_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

func newKey(t testing.TB) (ed25519.PrivateKey, node.SiteID) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv, node.SiteIDOf(pub)
}

func newFeed(t testing.TB, site node.SiteID) *gateway.RecordFeed {
	t.Helper()
	f, err := gateway.NewRecordFeed(site, node.NewRecordLog(node.NewMemMeta()))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var someRoot = node.Sum(node.CodecRaw, []byte("root"))

func TestRecordEndpoints(t *testing.T) {
	key, site := newKey(t)
	feed := newFeed(t, site)
	h := gateway.NewRecords(gateway.RecordsOptions{}, feed)
	defer h.Close()
	srv := newServer(t, h)

	resp, _ := get(t, srv.URL+gateway.RecordPath(site))
	if resp.StatusCode != 404 {
		t.Fatalf("before the first record: status %d", resp.StatusCode)
	}
	var recs []*node.RootRecord
	for i := range 3 {
		r, err := feed.SignNext(key, node.Sum(node.CodecRaw, []byte{byte(i)}), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	resp, body := get(t, srv.URL+gateway.RecordPath(site))
	if resp.StatusCode != 200 || string(body) != string(recs[2].Bytes()) {
		t.Fatalf("latest: status %d", resp.StatusCode)
	}
	if resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("Content-Type") != gateway.MediaRecord {
		t.Errorf("headers %v", resp.Header)
	}
	resp, _ = get(t, srv.URL+gateway.RecordPath(site), "If-None-Match", resp.Header.Get("Etag"))
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}

	// History: length-prefixed records, oldest first; since filters.
	_, body = get(t, srv.URL+gateway.RecordsPath(site)+"?since=1")
	var seqs []uint64
	for len(body) > 0 {
		n := int(binary.BigEndian.Uint16(body))
		r, err := node.ParseRootRecordFor(site, body[2:2+n])
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, r.Seq)
		body = body[2+n:]
	}
	if len(seqs) != 2 || seqs[0] != 2 || seqs[1] != 3 {
		t.Fatalf("history since 1: %v", seqs)
	}
	hist, err := gateway.FetchHistory(context.Background(), nil, srv.URL, site, 0)
	if err != nil || len(hist) != 3 {
		t.Fatalf("FetchHistory: %d records, %v", len(hist), err)
	}

	_, other := newKey(t)
	for path, want := range map[string]int{
		gateway.RecordPath(other):                      404,
		"/.well-known/hearth/bnotasite/record":         400,
		gateway.WellKnownPrefix + site.String() + "/x": 404,
	} {
		if resp, _ := get(t, srv.URL+path); resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// A subscriber hears of each new record at once, and Close ends streams.
func TestRecordEvents(t *testing.T) {
	key, site := newKey(t)
	feed := newFeed(t, site)
	if _, err := feed.SignNext(key, someRoot, time.Now()); err != nil {
		t.Fatal(err)
	}
	h := gateway.NewRecords(gateway.RecordsOptions{KeepAlive: 50 * time.Millisecond}, feed)
	srv := newServer(t, h)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan *node.RootRecord, 10)
	var wg sync.WaitGroup
	var followErr error
	wg.Go(func() {
		followErr = gateway.FollowEvents(ctx, nil, srv.URL, site, 0, time.Second, func(raw []byte) {
			r, err := node.ParseRootRecordFor(site, raw)
			if err != nil {
				t.Errorf("event: %v", err)
				return
			}
			got <- r
		})
	})
	if r := <-got; r.Seq != 1 {
		t.Fatalf("first event seq %d", r.Seq)
	}
	for seq := uint64(2); seq <= 4; seq++ {
		start := time.Now()
		if _, err := feed.SignNext(key, someRoot, time.Now()); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if r.Seq != seq {
				t.Fatalf("event seq %d, want %d", r.Seq, seq)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("event took %s", d)
			}
		case <-ctx.Done():
			t.Fatal("no event")
		}
	}
	// A quiet stream carries keep-alive comments.
	kctx, kcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer kcancel()
	req, _ := http.NewRequestWithContext(kctx, "GET", srv.URL+gateway.EventsPath(site)+"?since=99", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("no keep-alive: %v", err)
		}
		if strings.HasPrefix(line, ":") {
			break
		}
		if strings.HasPrefix(line, "data:") {
			t.Fatalf("event replayed past since: %q", line)
		}
	}
	resp.Body.Close()
	h.Close()
	wg.Wait()
	if followErr == nil || !errors.Is(followErr, gateway.ErrSourceFailed) {
		t.Fatalf("after Close: %v", followErr)
	}
	if len(got) != 0 {
		t.Fatalf("%d unexpected events", len(got))
	}

	// Last-Event-ID: nothing older is replayed.
	h2 := gateway.NewRecords(gateway.RecordsOptions{}, feed)
	srv2 := newServer(t, h2)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	n := 0
	_ = gateway.FollowEvents(ctx2, nil, srv2.URL, site, 4, 0, func([]byte) { n++ })
	h2.Close()
	if n != 0 {
		t.Fatalf("%d events replayed after Last-Event-ID 4", n)
	}
}

// recordServer serves body at the record path of any site.
func recordServer(t *testing.T, body func() []byte) string {
	t.Helper()
	return newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/record"):
			w.Write(body())
		case strings.HasSuffix(r.URL.Path, "/events"):
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte("event: record\ndata: " + strings.Repeat("A", 5000) + "\n\n"))
		default:
			http.NotFound(w, r)
		}
	})).URL
}

func TestFetchRecordRefusesBadRecords(t *testing.T) {
	key, site := newKey(t)
	otherKey, _ := newKey(t)
	good, err := node.NewRootRecord(key, 5, someRoot, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := node.NewRootRecord(otherKey, 9, someRoot, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tampered := good.Bytes()
	tampered[40]++ // the sequence
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		body []byte
		want error
	}{
		{"good", good.Bytes(), nil},
		{"another site's key", foreign.Bytes(), node.ErrWrongSite},
		{"tampered", tampered, node.ErrBadSignature},
		{"truncated", good.Bytes()[:len(good.Bytes())-10], node.ErrBadRecord},
		{"empty", nil, node.ErrBadRecord},
		{"oversized", make([]byte, 100000), node.ErrBadRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := recordServer(t, func() []byte { return tc.body })
			r, err := gateway.FetchRecord(ctx, nil, url, site)
			if !errors.Is(err, tc.want) || (tc.want == nil && r.Seq != 5) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), url) {
				t.Errorf("error does not name the source: %v", err)
			}
		})
	}
	// An event line over 4 KiB is refused, not buffered.
	url := recordServer(t, func() []byte { return nil })
	err = gateway.FollowEvents(ctx, nil, url, site, 0, time.Second, func([]byte) { t.Error("event delivered") })
	if !errors.Is(err, gateway.ErrLied) {
		t.Fatalf("long event line: %v", err)
	}
	if _, err := gateway.FetchRecord(ctx, nil, "ftp://x", site); !errors.Is(err, gateway.ErrBadURL) {
		t.Fatalf("malformed URL: %v", err)
	}
}

// BestRecord takes the highest valid sequence and reports the others.
func TestBestRecord(t *testing.T) {
	key, site := newKey(t)
	otherKey, _ := newKey(t)
	r3, _ := node.NewRootRecord(key, 3, someRoot, time.Now())
	r7, _ := node.NewRootRecord(key, 7, someRoot, time.Now())
	forged, _ := node.NewRootRecord(otherKey, 99, someRoot, time.Now())
	urls := []string{
		recordServer(t, func() []byte { return r3.Bytes() }),
		recordServer(t, func() []byte { return forged.Bytes() }),
		recordServer(t, func() []byte { return r7.Bytes() }),
		"http://127.0.0.1:1", // nothing listens
	}
	f, err := gateway.NewFetcher(urls, gateway.FetcherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	best, errs, err := f.BestRecord(context.Background(), site)
	if err != nil || best.Seq != 7 {
		t.Fatalf("best %v, %v", best, err)
	}
	if errs[0] != nil || !errors.Is(errs[1], node.ErrWrongSite) || errs[2] != nil || !errors.Is(errs[3], gateway.ErrSourceFailed) {
		t.Fatalf("errors %v", errs)
	}
	f2, _ := gateway.NewFetcher(urls[1:2], gateway.FetcherOptions{})
	if _, _, err := f2.BestRecord(context.Background(), site); !errors.Is(err, gateway.ErrNoSources) || !errors.Is(err, node.ErrWrongSite) {
		t.Fatalf("only a forged record: %v", err)
	}
}

// An event stream outlives the server's ReadTimeout: the keep-alives move
// the connection's deadlines, so records still arrive.
func TestRecordEventsOutliveReadTimeout(t *testing.T) {
	key, site := newKey(t)
	feed := newFeed(t, site)
	h := gateway.NewRecords(gateway.RecordsOptions{KeepAlive: 50 * time.Millisecond}, feed)
	defer h.Close()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Start()
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+gateway.EventsPath(site), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	// 20 keep-alives: about five read timeouts.
	for n := 0; n < 20; {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended after %d keep-alives: %v", n, err)
		}
		if strings.HasPrefix(line, ":") {
			n++
		}
	}
	if _, err := feed.SignNext(key, someRoot, time.Now()); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("no event: %v", err)
		}
		if strings.HasPrefix(line, "id: 1") {
			return
		}
	}
}
