package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearthcdn/hearth/node"
)

//go:embed assets
var assets embed.FS

// Feed is where the dashboard reads root records (gateway.RecordFeed).
type Feed interface {
	History() []*node.RootRecord
}

// Options configure a Dashboard.
type Options struct {
	// Prefix is the URL path the dashboard is served under, ending in
	// "/" (hosting.DashboardPrefix).
	Prefix string
	// Gatherer holds the node's metrics (hosting.Metrics.Gatherer).
	Gatherer prometheus.Gatherer
	// Feed lists the site's root records; nil: none shown.
	Feed Feed
	// Token, when set, is what a client must present (?token=, a cookie
	// set from it, or Authorization: Bearer); when empty only loopback
	// clients are served, and no request that came through a proxy.
	Token string
	// Peers are base URLs of seeders whose /metrics are read for the bytes
	// they served.
	Peers []string
	// Interval is how often a sample is taken; 0 means 1 s.
	Interval time.Duration
	// History is how many samples are kept and sent to a page that opens;
	// 0 means 900.
	History int
	Client  *http.Client     // for Peers; nil: one with a timeout of Interval
	Now     func() time.Time // nil: time.Now
	Logger  *slog.Logger     // nil: slog.Default()
}

// Records is how many of the newest root records the dashboard lists.
const Records = 8

// Dashboard serves the dashboard page and its event stream, and samples
// the metrics while Run runs. Create it with New.
type Dashboard struct {
	opts Options
	mux  *http.ServeMux

	mu        sync.Mutex
	samples   []Sample // oldest first, at most opts.History
	peerBytes []float64
	changed   chan struct{} // closed and replaced at every sample

	closeOnce sync.Once
	closed    chan struct{}
}

// New returns a dashboard. It takes no samples until Run.
func New(opts Options) *Dashboard {
	if opts.Prefix == "" {
		opts.Prefix = "/"
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.History <= 0 {
		opts.History = 900
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: opts.Interval}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	d := &Dashboard{opts: opts, mux: http.NewServeMux(), changed: make(chan struct{}),
		closed: make(chan struct{}), peerBytes: make([]float64, len(opts.Peers))}
	p := opts.Prefix
	d.mux.HandleFunc("GET "+p+"{$}", d.serveAsset("index.html", "text/html; charset=utf-8"))
	d.mux.HandleFunc("GET "+p+"dash.js", d.serveAsset("dash.js", "text/javascript; charset=utf-8"))
	d.mux.HandleFunc("GET "+p+"dash.css", d.serveAsset("dash.css", "text/css; charset=utf-8"))
	d.mux.HandleFunc("GET "+p+"snapshot.json", d.serveSnapshot)
	d.mux.HandleFunc("GET "+p+"events", d.serveEvents)
	return d
}

// ServeHTTP serves the operator, and refuses everyone else with 403.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
	if !d.authorized(w, r) {
		http.Error(w, "the dashboard is the operator's: "+d.howToAccess(), http.StatusForbidden)
		return
	}
	d.mux.ServeHTTP(w, r)
}

// Run takes a sample every Interval until ctx ends or Close is called.
func (d *Dashboard) Run(ctx context.Context) error {
	t := time.NewTicker(d.opts.Interval)
	defer t.Stop()
	for {
		d.sample(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-d.closed:
			return nil
		case <-t.C:
		}
	}
}

// Close ends the open event streams and Run; call it when shutting down.
func (d *Dashboard) Close() { d.closeOnce.Do(func() { close(d.closed) }) }

// Snapshot reads the metrics now; peers' bytes are those of the latest
// sample.
func (d *Dashboard) Snapshot() (Sample, error) {
	s := Sample{Time: d.opts.Now().UnixMilli(), Peers: len(d.opts.Peers)}
	if err := read(d.opts.Gatherer, &s); err != nil {
		return s, err
	}
	d.mu.Lock()
	if n := len(d.samples); n > 0 {
		s.PeerBytes, s.PeersUp = d.samples[n-1].PeerBytes, d.samples[n-1].PeersUp
	}
	d.mu.Unlock()
	return s, nil
}

func (d *Dashboard) sample(ctx context.Context) {
	s := Sample{Peers: len(d.opts.Peers)}
	if err := read(d.opts.Gatherer, &s); err != nil {
		d.opts.Logger.Warn("dashboard sample", "err", err)
		return
	}
	// Peers are scraped one after another: a handful, each bounded by
	// the client's timeout. One that does not answer keeps its last value.
	for i, p := range d.opts.Peers {
		v, err := scrapePeer(ctx, d.opts.Client, p)
		if err != nil {
			d.opts.Logger.Debug("dashboard peer", "peer", p, "err", err)
			continue
		}
		s.PeersUp++
		d.peerBytes[i] = v
	}
	for _, v := range d.peerBytes {
		s.PeerBytes += v
	}
	s.Time = d.opts.Now().UnixMilli()
	d.mu.Lock()
	d.samples = append(d.samples, s)
	if len(d.samples) > d.opts.History {
		d.samples = slices.Delete(d.samples, 0, len(d.samples)-d.opts.History)
	}
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

// update is one server-sent event's data.
type update struct {
	Samples  []Sample `json:"samples"`
	Records  []Record `json:"records"`
	Interval int64    `json:"interval"` // ms
}

func (d *Dashboard) records() []Record {
	if d.opts.Feed == nil {
		return []Record{}
	}
	return records(d.opts.Feed.History(), Records)
}

func (d *Dashboard) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	s, err := d.Snapshot()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(update{Samples: []Sample{s}, Records: d.records(), Interval: d.opts.Interval.Milliseconds()})
}

// streamIdle is how long an event stream's write may block before the
// client counts as gone.
const streamIdle = 30 * time.Second

// serveEvents sends the samples kept ("history"), then each new one
// ("sample"), until the client leaves or the dashboard is closed.
func (d *Dashboard) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, u update) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamIdle))
		b, _ := json.Marshal(u)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	d.mu.Lock()
	u := update{Samples: slices.Clone(d.samples), Interval: d.opts.Interval.Milliseconds()}
	changed := d.changed
	d.mu.Unlock()
	u.Records = d.records()
	if !send("history", u) {
		return
	}
	for {
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		case <-d.closed:
			return
		}
		d.mu.Lock()
		s := d.samples[len(d.samples)-1]
		changed = d.changed
		d.mu.Unlock()
		if !send("sample", update{Samples: []Sample{s}, Records: d.records(), Interval: d.opts.Interval.Milliseconds()}) {
			return
		}
	}
}

func (d *Dashboard) serveAsset(name, ctype string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ctype)
		_, _ = w.Write(b)
	}
}
