// Package seeder is a member's node: it follows a site's signed root
// records, replicates each new root's DAG into a local store (only the
// missing blocks, in parallel, from the origin or from other seeders),
// pins the newest roots, garbage-collects the rest, and serves what it
// holds over the same HTTP endpoints as the origin, so that it can stand
// in for it. Native only.
//
// Records arrive by the origin's event stream (reconnected with backoff)
// and by polling the origin and the peers; a record is accepted only if it
// is signed by the site key, for this site, with a sequence above the
// latest held. See node.PutPin for how pins survive crashes.
package seeder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/node/hosting"
)

// Store is what a seeder keeps blocks, records and pins in
// (pebblestore.Store). If it also has DeleteMany(ctx, []cid.Cid) error,
// garbage collection uses it to delete in batches.
type Store interface {
	node.Blockstore
	node.MetaStore
}

// Pin is a root the seeder holds in full (node.Pin).
type Pin = node.Pin

// Config configures a Seeder.
type Config struct {
	Site   node.SiteID
	Origin string   // the origin's base URL
	Peers  []string // other seeders' base URLs: fallback sources of records and blocks
	Store  Store
	// Keep is how many of the newest roots stay pinned; 0 means 3.
	Keep int
	// MaxStorage, if positive, bounds the bytes of pinned DAGs, counted
	// as the stored blocks' own lengths (never the sizes links claim): a
	// root whose DAG alone exceeds it is refused as soon as the bytes
	// received pass it (not pinned, its blocks collected), and older pins
	// are dropped to make room for newer ones.
	MaxStorage int64
	// PollInterval is how often records are polled besides the event
	// stream; 0 means 30 s.
	PollInterval time.Duration
	// Concurrency is the number of parallel block downloads; 0 means 16.
	Concurrency int
	// MaxRate, if positive, caps the download rate in bytes per second.
	MaxRate int64
	// EventIdle is how long a silent event stream is trusted before
	// reconnecting; 0 means 45 s (the server sends a keep-alive every 15 s).
	EventIdle time.Duration
	// EventStreams bound the record event streams the seeder serves, per
	// client and in all; the zero value means gateway's defaults.
	EventStreams gateway.StreamLimits
	Client       *http.Client // nil: gateway.NewHTTPClient()
	Logger       *slog.Logger // nil: slog.Default()
	// InjectLoader adds the browser client's loader to the site's text/html
	// responses (gateway.SiteOptions.InjectLoader); set it only where
	// /.hearth/ is served beside the site.
	InjectLoader bool
	Metrics      *hosting.Metrics // nil: fresh metrics
}

// Seeder replicates and serves one site. Create it with New, then Run it.
type Seeder struct {
	cfg        Config
	log        *slog.Logger
	m          *hosting.Metrics
	feed       *gateway.RecordFeed
	records    *gateway.Records
	fetcher    *gateway.Fetcher
	replicator *gateway.Replicator
	handler    http.Handler
	sources    []string
	repair     chan struct{} // a corrupt block was found: re-check the pins

	mu          sync.Mutex
	pins        []Pin // newest first
	swept       bool  // a collection scanned the whole store (replicateLoop only)
	refusedSeq  uint64
	replicating uint64
	lastErr     string
}

// New opens the seeder's state in cfg.Store. Errors come from the
// configuration (ErrBadURL for a malformed origin or peer) or the store.
func New(cfg Config) (*Seeder, error) {
	if cfg.Store == nil {
		return nil, errors.New("seeder: Store is required")
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 3
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 30 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = hosting.NewMetrics()
	}
	if cfg.Client == nil {
		cfg.Client = gateway.NewHTTPClient()
	}
	sources, err := gateway.ParseSources(cfg.Origin)
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	for _, p := range cfg.Peers {
		ps, err := gateway.ParseSources(p)
		if err != nil {
			return nil, fmt.Errorf("peer: %w", err)
		}
		sources = append(sources, ps...)
	}
	s := &Seeder{
		cfg:     cfg,
		log:     cfg.Logger.With("site", cfg.Site.String()),
		m:       cfg.Metrics,
		sources: sources,
		repair:  make(chan struct{}, 1),
	}
	if s.feed, err = gateway.NewRecordFeed(cfg.Site, node.NewRecordLog(cfg.Store)); err != nil {
		return nil, err
	}
	var lim *rate.Limiter
	if cfg.MaxRate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.MaxRate), max(node.MaxBlockLen, int(min(cfg.MaxRate, 1<<30))))
	}
	s.fetcher, err = gateway.NewFetcher(sources, gateway.FetcherOptions{
		Client:   cfg.Client,
		DropFor:  2 * time.Minute,
		Limiter:  lim,
		OnStored: s.m.Stored,
		OnDrop:   func(string, error) { s.m.SourcesDrop.Inc() },
		Logger:   s.log,
	})
	if err != nil {
		return nil, err
	}
	s.replicator = gateway.NewReplicator(s.fetcher, cfg.Store, gateway.ReplicatorOptions{
		Concurrency: cfg.Concurrency,
		MaxBytes:    cfg.MaxStorage,
		Logger:      s.log,
	})
	s.pins = node.LoadPins(cfg.Store, cfg.Site)
	s.updateGauges()
	s.records = gateway.NewRecords(gateway.RecordsOptions{Logger: s.log, Observer: s.m, Streams: cfg.EventStreams}, s.feed)
	s.handler = hosting.Routes{
		Trustless: gateway.NewTrustless(cfg.Store, gateway.TrustlessOptions{Logger: s.log, Observer: s.m, OnCorrupt: s.onCorrupt}),
		Records:   s.records,
		Site:      gateway.NewSite(node.NewVerifyingStore(cfg.Store), s.root, gateway.SiteOptions{Logger: s.log, Observer: s.m, InjectLoader: cfg.InjectLoader}),
		Metrics:   s.m.Handler(),
		Health:    s.health,
	}.Handler()
	return s, nil
}

// Handler returns the seeder's HTTP handler (routes: hosting.Routes.Handler).
func (s *Seeder) Handler() http.Handler { return s.handler }

// Close ends the open record event streams; call it when shutting down.
func (s *Seeder) Close() { s.records.Close() }

// Feed returns the site's record feed.
func (s *Seeder) Feed() *gateway.RecordFeed { return s.feed }

// Pins returns the pinned roots, newest first.
func (s *Seeder) Pins() []Pin {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Pin(nil), s.pins...)
}

// Sources returns the health of the block sources (origin first).
func (s *Seeder) Sources() []gateway.SourceStatus { return s.fetcher.Sources() }

// Run follows records, replicates and collects garbage until ctx ends; it
// returns nil then, or the first error that stops the seeder (a failing
// store). Every goroutine it starts has ended when it returns.
func (s *Seeder) Run(ctx context.Context) error {
	if r := s.feed.Latest(); r != nil {
		s.m.RecordSeq.Set(float64(r.Seq))
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.followLoop(ctx) })
	g.Go(func() error { return s.pollLoop(ctx) })
	g.Go(func() error { return s.replicateLoop(ctx) })
	return g.Wait()
}

func (s *Seeder) root(context.Context) (cid.Cid, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pins) == 0 {
		return cid.Undef, fmt.Errorf("site %s: nothing replicated yet: %w", s.cfg.Site, gateway.ErrNoRoot)
	}
	return s.pins[0].Root, nil
}

func (s *Seeder) updateGauges() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m.PinnedRoots.Set(float64(len(s.pins)))
	if len(s.pins) > 0 {
		s.m.PinnedSeq.Set(float64(s.pins[0].Seq))
	} else {
		s.m.PinnedSeq.Set(0)
	}
}

// healthDetail is the JSON body of /healthz.
type healthDetail struct {
	Site        string   `json:"site"`
	Ready       bool     `json:"ready"`
	RecordSeq   uint64   `json:"record_seq"`
	PinnedSeq   uint64   `json:"pinned_seq"`
	Pinned      []uint64 `json:"pinned"`
	Replicating uint64   `json:"replicating,omitempty"`
	RefusedSeq  uint64   `json:"refused_seq,omitempty"`
	LastError   string   `json:"last_error,omitempty"`
}

// health reports ready once a root is pinned: the seeder can then serve
// the site without the origin.
func (s *Seeder) health() (bool, any) {
	d := healthDetail{Site: s.cfg.Site.String(), Pinned: []uint64{}}
	if r := s.feed.Latest(); r != nil {
		d.RecordSeq = r.Seq
	}
	s.mu.Lock()
	for _, p := range s.pins {
		d.Pinned = append(d.Pinned, p.Seq)
	}
	if len(s.pins) > 0 {
		d.PinnedSeq = s.pins[0].Seq
	}
	d.Replicating, d.RefusedSeq, d.LastError = s.replicating, s.refusedSeq, s.lastErr
	s.mu.Unlock()
	d.Ready = d.PinnedSeq > 0
	return d.Ready, d
}

// onCorrupt handles a block the store returned corrupt while serving: it
// deletes the bad copy (clients then get 404 and go elsewhere) and asks
// the replication loop to fetch it again.
func (s *Seeder) onCorrupt(c cid.Cid) {
	s.log.Error("stored block is corrupt; deleting it and repairing", "cid", c.String())
	if err := s.cfg.Store.Delete(context.Background(), c); err != nil {
		s.log.Error("deleting corrupt block", "cid", c.String(), "err", err)
	}
	select {
	case s.repair <- struct{}{}:
	default:
	}
}
