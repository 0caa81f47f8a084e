//go:build linux

package harness_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

// fakeOrigin is an origin under the test's control: it serves whatever
// record bytes it is told to, no event stream (so seeders poll), and a
// trustless gateway over a store.
type fakeOrigin struct {
	mu     sync.Mutex
	record []byte
	url    string
}

func startFakeOrigin(t *testing.T, g node.Getter) *fakeOrigin {
	t.Helper()
	f := &fakeOrigin{}
	mux := http.NewServeMux()
	mux.Handle("/ipfs/", gateway.NewTrustless(g, gateway.TrustlessOptions{}))
	mux.HandleFunc("/.well-known/hearth/{site}/record", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		b := f.record
		f.mu.Unlock()
		w.Header().Set("Content-Type", gateway.MediaRecord)
		w.Write(b)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fakeOrigin) set(b []byte) {
	f.mu.Lock()
	f.record = b
	f.mu.Unlock()
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func record(t *testing.T, key ed25519.PrivateKey, seq uint64, root cid.Cid) []byte {
	t.Helper()
	r, err := node.NewRootRecord(key, seq, root, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return r.Bytes()
}

// Records signed by another key, an old record replayed, a tampered and
// a truncated record: a seeder and hearth get refuse each, clearly.
func TestHostileRecords(t *testing.T) {
	ms, root := harness.BuildDAG(t, smallSite())
	key, other := newKey(t), newKey(t)
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey))
	fake := startFakeOrigin(t, ms)
	r1, r2 := record(t, key, 1, root), record(t, key, 2, root)
	fake.set(r2)

	s := harness.StartSeeder(t, "seeder", site, fake.url, "--poll", "100ms")
	s.WaitMetric("hearth_pinned_sequence", 30*time.Second, func(v float64) bool { return v == 2 })
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	get := func() (string, error) {
		_, stderr, err := harness.Run(t, dir, time.Minute, "get", "--store", store, "--timeout", "5s",
			"--from", fake.url, site.String(), "-o", filepath.Join(dir, "out"))
		return stderr, err
	}
	if stderr, err := get(); err != nil {
		t.Fatalf("get of the good record: %v\n%s", err, stderr)
	}

	tampered := bytes.Clone(r2)
	tampered[len(tampered)-70] ^= 1 // inside the CID
	for _, tc := range []struct {
		name, reason, getErr string
		body                 []byte
	}{
		{"another key", "wrong_site", "root record is for another site", record(t, other, 3, root)},
		{"old record replayed", "stale", "seen before (an old record replayed?)", r1},
		{"tampered", "bad_signature", "root record signature invalid", tampered},
		{"truncated", "malformed", "truncated", r2[:40]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			series := fmt.Sprintf(`hearth_records_refused_total{reason=%q}`, tc.reason)
			before := s.Metric(series)
			fake.set(tc.body)
			s.WaitMetric(series, 10*time.Second, func(v float64) bool { return v > before })
			if seq := s.Metric("hearth_record_sequence"); seq != 2 {
				t.Fatalf("record sequence %v after a refused record", seq)
			}
			if !strings.Contains(s.Log(), "reason="+tc.reason) {
				t.Errorf("seeder log does not say reason=%s", tc.reason)
			}
			stderr, err := get()
			if err == nil || !strings.Contains(stderr, tc.getErr) {
				t.Fatalf("get: %v, want an error saying %q:\n%s", err, tc.getErr, stderr)
			}
		})
	}
	fake.set(r2)
}

// hearth get against gateways that drip, never end, or lie, next to a good
// one: it finishes, in bounded time, with the right bytes.
func TestGetHostileGateways(t *testing.T) {
	src := t.TempDir()
	harness.WriteTree(t, src, smallSite())
	ms, root := harness.ImportDir(t, src)
	key := newKey(t)
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey))
	good := startFakeOrigin(t, ms)
	good.set(record(t, key, 1, root))

	rec := record(t, key, 1, root)
	hostile := func(serve func(w http.ResponseWriter, r *http.Request)) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/record") {
				w.Write(rec)
				return
			}
			serve(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	endless := hostile(func(w http.ResponseWriter, r *http.Request) {
		buf := bytes.Repeat([]byte{1}, 64<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	drip := hostile(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		for r.Context().Err() == nil {
			if _, err := w.Write([]byte{1}); err != nil {
				return
			}
			rc.Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	wrong := hostile(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", gateway.CARContentType)
		w.Write([]byte("not what you asked for"))
	})

	dir := t.TempDir()
	start := time.Now()
	_, stderr, err := harness.Run(t, dir, time.Minute, "get", "--store", filepath.Join(dir, "store"), "--timeout", "1s",
		"--from", strings.Join([]string{drip, endless, wrong, good.url}, ","), site.String(), "-o", filepath.Join(dir, "out"))
	if err != nil {
		t.Fatalf("get: %v\n%s", err, stderr)
	}
	harness.SameTree(t, src, filepath.Join(dir, "out"))
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s", d)
	}
	for _, u := range []string{endless, wrong} {
		if !strings.Contains(stderr, `msg="dropping source" source=`+u) {
			t.Errorf("%s not dropped:\n%s", u, stderr)
		}
	}

	// Nothing but hostile sources: a clear error, in bounded time.
	start = time.Now()
	_, stderr, err = harness.Run(t, dir, time.Minute, "get", "--store", filepath.Join(dir, "store2"), "--timeout", "1s",
		"--from", strings.Join([]string{drip, endless}, ","), site.String(), "-o", filepath.Join(dir, "out2"))
	if err == nil || !strings.Contains(stderr, "no source could serve the request") {
		t.Fatalf("get from hostile sources only: %v\n%s", err, stderr)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("failing took %s", d)
	}
	// Bad input: malformed URL, unknown site, unreachable source.
	for _, tc := range []struct{ args, want string }{
		{"--from ftp://x " + site.String(), "malformed source URL"},
		{"--from " + good.url + " bnotasite", "malformed site ID"},
		{"--from http://127.0.0.1:1 " + site.String(), "no source could serve the request"},
	} {
		_, stderr, err := harness.Run(t, dir, time.Minute, append([]string{"get", "--store", filepath.Join(dir, "store3")}, strings.Fields(tc.args)...)...)
		if err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("get %s: %v, want %q in:\n%s", tc.args, err, tc.want, stderr)
		}
	}
}
