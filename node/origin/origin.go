// Package origin is the operator's node: it publishes a site directory as a
// UnixFS DAG, signs each new root in a root record, and serves the site's
// files, its records (with push to subscribers) and the Trustless Gateway
// over one HTTP handler. With Watch it republishes when the directory
// changes. Native only (it imports and stores in pebble).
package origin

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/node/hosting"
	"github.com/hearthcdn/hearth/node/importer"
)

// Store is what an origin keeps its blocks and records in (pebblestore.Store).
type Store interface {
	node.Blockstore
	node.MetaStore
}

// Config configures an Origin.
type Config struct {
	Store Store
	// Key is the site key; the site is its public key.
	Key ed25519.PrivateKey
	// Source is the file or directory Publish imports; empty means the
	// origin serves what `hearth publish --key` stored before.
	Source string
	// Debounce is how long Watch waits for changes to settle before
	// republishing; 0 means 500 ms. A stream of changes republishes at
	// least every 10 Debounce periods.
	Debounce time.Duration
	Logger   *slog.Logger     // nil: slog.Default()
	Metrics  *hosting.Metrics // nil: fresh metrics
}

// Origin serves one site. Create it with New.
type Origin struct {
	cfg     Config
	site    node.SiteID
	feed    *gateway.RecordFeed
	records *gateway.Records
	handler http.Handler
	log     *slog.Logger

	publishMu sync.Mutex // one import at a time
}

// New returns an origin for cfg.Key's site over cfg.Store. It does not
// publish: call Publish (and Watch) for that.
func New(cfg Config) (*Origin, error) {
	if cfg.Store == nil || cfg.Key == nil {
		return nil, errors.New("origin: Store and Key are required")
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = hosting.NewMetrics()
	}
	site := node.SiteIDOf(cfg.Key.Public().(ed25519.PublicKey))
	feed, err := gateway.NewRecordFeed(site, node.NewRecordLog(cfg.Store))
	if err != nil {
		return nil, err
	}
	o := &Origin{cfg: cfg, site: site, feed: feed, log: cfg.Logger.With("site", site.String())}
	if r := feed.Latest(); r != nil {
		cfg.Metrics.RecordSeq.Set(float64(r.Seq))
	}
	m := cfg.Metrics
	o.records = gateway.NewRecords(gateway.RecordsOptions{Logger: o.log, Observer: m}, feed)
	o.handler = hosting.Routes{
		Trustless: gateway.NewTrustless(cfg.Store, gateway.TrustlessOptions{Logger: o.log, Observer: m}),
		Records:   o.records,
		// A writer holding the site key (hearth mount --key) publishes
		// new roots here; the signed record is the authorization.
		Publish: gateway.NewPublish(feed, cfg.Store, 0),
		Site:    gateway.NewSite(node.NewVerifyingStore(cfg.Store), o.root, gateway.SiteOptions{Logger: o.log, Observer: m}),
		Metrics: m.Handler(),
		Health:  o.health,
	}.Handler()
	return o, nil
}

// Site returns the site the origin serves.
func (o *Origin) Site() node.SiteID { return o.site }

// Feed returns the site's record feed.
func (o *Origin) Feed() *gateway.RecordFeed { return o.feed }

// Handler returns the origin's HTTP handler (routes: hosting.Routes.Handler).
func (o *Origin) Handler() http.Handler { return o.handler }

// Close ends the open record event streams; call it when shutting down.
func (o *Origin) Close() { o.records.Close() }

func (o *Origin) root(context.Context) (cid.Cid, error) {
	r := o.feed.Latest()
	if r == nil {
		return cid.Undef, fmt.Errorf("site %s: %w", o.site, gateway.ErrNoRoot)
	}
	return r.Root, nil
}

// healthDetail is the JSON body of /healthz.
type healthDetail struct {
	Site  string `json:"site"`
	Ready bool   `json:"ready"`
	Seq   uint64 `json:"seq,omitempty"`
	Root  string `json:"root,omitempty"`
}

func (o *Origin) health() (bool, any) {
	d := healthDetail{Site: o.site.String()}
	if r := o.feed.Latest(); r != nil {
		d.Ready, d.Seq, d.Root = true, r.Seq, r.Root.String()
	}
	return d.Ready, d
}

// Publish imports cfg.Source and, when its root differs from the latest
// record's, signs and serves the next record. It returns the latest record
// and whether it is new. Subscribers learn of a new record at once.
func (o *Origin) Publish(ctx context.Context) (*node.RootRecord, bool, error) {
	if o.cfg.Source == "" {
		return nil, false, errors.New("publishing: no source directory configured")
	}
	o.publishMu.Lock()
	defer o.publishMu.Unlock()
	start := time.Now()
	im := importer.New(o.cfg.Store, importer.Options{})
	root, err := im.ImportPath(ctx, o.cfg.Source)
	if err != nil {
		return nil, false, fmt.Errorf("publishing %s: %w", o.cfg.Source, err)
	}
	if cur := o.feed.Latest(); cur != nil && cur.Root.Equals(root) {
		return cur, false, nil
	}
	rec, err := o.feed.SignNext(o.cfg.Key, root, time.Now())
	if err != nil {
		return nil, false, fmt.Errorf("signing root %s: %w", root, err)
	}
	st := im.Stats()
	o.cfg.Metrics.RecordSeq.Set(float64(rec.Seq))
	o.cfg.Metrics.Published.Inc()
	o.log.Info("published", "seq", rec.Seq, "root", root.String(), "files", st.Files, "bytes", st.Bytes,
		"took", time.Since(start).Round(time.Millisecond))
	return rec, true, nil
}
