package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/internal/harness"
	"github.com/hearthcdn/hearth/node/dashboard"
	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/node/hosting"
)

const prefix = hosting.DashboardPrefix

func newDash(t *testing.T, m *hosting.Metrics, opts dashboard.Options) *dashboard.Dashboard {
	opts.Prefix, opts.Gatherer = prefix, m.Gatherer()
	d := dashboard.New(opts)
	t.Cleanup(d.Close)
	return d
}

func code(h http.Handler, r *http.Request) int {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

func TestAccessLoopback(t *testing.T) {
	d := newDash(t, hosting.NewMetrics(), dashboard.Options{})
	for _, c := range []struct {
		remote string
		header string
		want   int
	}{
		{"127.0.0.1:5000", "", 200},
		{"[::1]:5000", "", 200},
		{"192.0.2.7:5000", "", 403},
		{"[2001:db8::1]:5000", "", 403},
		{"127.0.0.1:5000", "X-Forwarded-For", 403}, // a reverse proxy on this host
		{"127.0.0.1:5000", "Forwarded", 403},
	} {
		r := httptest.NewRequest("GET", prefix, nil)
		r.RemoteAddr = c.remote
		if c.header != "" {
			r.Header.Set(c.header, "192.0.2.7")
		}
		if got := code(d, r); got != c.want {
			t.Errorf("%s %s: %d, want %d", c.remote, c.header, got, c.want)
		}
	}
}

func TestAccessToken(t *testing.T) {
	d := newDash(t, hosting.NewMetrics(), dashboard.Options{Token: "s3cret"})
	get := func(target string, mod func(*http.Request)) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", target, nil)
		r.RemoteAddr = "192.0.2.7:5000"
		if mod != nil {
			mod(r)
		}
		w := httptest.NewRecorder()
		d.ServeHTTP(w, r)
		return w
	}
	if w := get(prefix, nil); w.Code != 403 {
		t.Errorf("no token: %d", w.Code)
	}
	local := get(prefix, func(r *http.Request) { r.RemoteAddr = "127.0.0.1:1" })
	if local.Code != 403 {
		t.Errorf("loopback without the token: %d", local.Code)
	}
	if w := get(prefix+"?token=wrong", nil); w.Code != 403 {
		t.Errorf("wrong token: %d", w.Code)
	}
	w := get(prefix+"?token=s3cret", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "dash.js") {
		t.Fatalf("token: %d", w.Code)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly {
		t.Fatalf("cookies %v", cookies)
	}
	if w := get(prefix+"dash.js", func(r *http.Request) { r.AddCookie(cookies[0]) }); w.Code != 200 {
		t.Errorf("with the cookie: %d", w.Code)
	}
	if w := get(prefix+"snapshot.json", func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") }); w.Code != 200 {
		t.Errorf("bearer: %d", w.Code)
	}
}

// The snapshot's figures are the ones /metrics serves.
func TestSnapshotMatchesMetrics(t *testing.T) {
	m := hosting.NewMetrics()
	m.Served(gateway.KindFile, 200, 1000)
	m.Served(gateway.KindFile, 404, 20)
	m.Served(gateway.KindRaw, 200, 300)
	m.Served(gateway.KindCAR, 200, 5000)
	m.Streams(3, 2)
	m.RecordSeq.Set(7)
	m.Published.Add(2)
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "# HELP x\nhearth_http_response_bytes_total{kind=\"car\"} 100\n"+
			"hearth_http_response_bytes_total{kind=\"events\"} 9999\nhearth_http_response_bytes_total{kind=\"file\"} 23\n")
	}))
	defer peer.Close()
	d := newDash(t, m, dashboard.Options{Peers: []string{peer.URL, "http://127.0.0.1:1"}, Interval: 20 * time.Millisecond})
	srv := httptest.NewServer(d)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	resp, err := http.Get(srv.URL + prefix + "events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var u struct {
		Samples []dashboard.Sample
	}
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			if err := json.Unmarshal([]byte(data), &u); err != nil {
				t.Fatal(err)
			}
			if len(u.Samples) > 0 {
				break
			}
		}
	}
	s := u.Samples[len(u.Samples)-1]

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	ms, err := harness.ParseMetrics(rec.Body.String())
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]float64{
		`hearth_http_response_bytes_total{kind="file"}`: s.OriginBytes["file"],
		`hearth_http_response_bytes_total{kind="raw"}`:  s.OriginBytes["raw"],
		`hearth_http_response_bytes_total{kind="car"}`:  s.OriginBytes["car"],
		"hearth_event_streams_open":                     s.Streams,
		"hearth_event_stream_clients":                   s.Clients,
		"hearth_record_sequence":                        s.Seq,
		"hearth_published_roots_total":                  s.Published,
	} {
		if ms[name] != got {
			t.Errorf("%s: dashboard %v, /metrics %v", name, got, ms[name])
		}
	}
	if want := ms[`hearth_http_requests_total{code="200",kind="file"}`] + ms[`hearth_http_requests_total{code="404",kind="file"}`]; s.Requests["file"] != want {
		t.Errorf("file requests: %v, want %v", s.Requests["file"], want)
	}
	if s.PeerBytes != 123 || s.PeersUp != 1 || s.Peers != 2 {
		t.Errorf("peers: %v bytes, %d of %d up", s.PeerBytes, s.PeersUp, s.Peers)
	}
}

// Close ends the event streams.
func TestCloseEndsStreams(t *testing.T) {
	d := newDash(t, hosting.NewMetrics(), dashboard.Options{})
	srv := httptest.NewServer(d)
	defer srv.Close()
	resp, err := http.Get(srv.URL + prefix + "events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	d.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
}
