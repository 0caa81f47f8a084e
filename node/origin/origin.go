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
	"slices"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/dashboard"
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
	// Keep is how many of the newest published roots stay pinned, their
	// blocks served; 0 means DefaultKeep. Older roots' blocks are
	// garbage-collected after each publish (Retain), unless KeepFor holds
	// them.
	Keep int
	// KeepFor keeps a replaced root pinned until it has been replaced for
	// this long, for visitors and seeders still on it; 0 means
	// DefaultKeepFor.
	KeepFor time.Duration
	// EventStreams bound the open record event streams, per client and
	// in all; the zero value means gateway's defaults.
	EventStreams gateway.StreamLimits
	// InjectLoader adds the browser client's loader to the site's text/html
	// responses (gateway.SiteOptions.InjectLoader); set it only where
	// /.hearth/ is served beside the site.
	InjectLoader bool
	// MaxPublish is the largest upload body (POST …/publish) accepted, in
	// bytes; a larger one is refused with 413. 0: gateway.DefaultMaxPublish.
	MaxPublish int64
	// PublishIdle is the longest an upload's body may stall, and
	// PublishMinRate the slowest average rate in bytes/s it may arrive at
	// (gateway.PublishOptions); 0: gateway.DefaultPublishIdle and
	// gateway.DefaultPublishMinRate.
	PublishIdle    time.Duration
	PublishMinRate int64
	Logger         *slog.Logger     // nil: slog.Default()
	Metrics        *hosting.Metrics // nil: fresh metrics
	// Dashboard, when set, serves the operator dashboard at
	// hosting.DashboardPrefix; its Prefix, Gatherer and Feed are filled
	// in. Run it with Dashboard().Run.
	Dashboard *dashboard.Options
}

// Origin serves one site. Create it with New.
type Origin struct {
	cfg     Config
	site    node.SiteID
	feed    *gateway.RecordFeed
	members *gateway.MemberFeed
	records *gateway.Records
	dash    *dashboard.Dashboard
	handler http.Handler
	log     *slog.Logger

	publishMu sync.Mutex // one import, upload or collection at a time
	scanned   bool       // a collection of this process scanned the store, none failed since; under publishMu
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
	members, err := gateway.NewMemberFeed(site, node.NewMemberStore(cfg.Store))
	if err != nil {
		return nil, err
	}
	o := &Origin{cfg: cfg, site: site, feed: feed, members: members, log: cfg.Logger.With("site", site.String())}
	if r := feed.Latest(); r != nil {
		cfg.Metrics.RecordSeq.Set(float64(r.Seq))
	}
	m := cfg.Metrics
	o.records = gateway.NewRecords(gateway.RecordsOptions{Logger: o.log, Observer: m, Streams: cfg.EventStreams}, feed)
	var dash http.Handler
	if cfg.Dashboard != nil {
		do := *cfg.Dashboard
		do.Prefix, do.Gatherer, do.Feed = hosting.DashboardPrefix, m.Gatherer(), feed
		if do.Logger == nil {
			do.Logger = o.log
		}
		o.dash = dashboard.New(do)
		dash = o.dash
	}
	o.handler = hosting.Routes{
		Trustless: gateway.NewTrustless(cfg.Store, gateway.TrustlessOptions{Logger: o.log, Observer: m}),
		Records:   o.records,
		// A writer holding the site key (hearth mount --key) publishes
		// new roots here; the signed record is the authorization.
		Publish: o.publishHandler(gateway.NewPublish(feed, cfg.Store, gateway.PublishOptions{
			MaxBody: cfg.MaxPublish, BodyIdle: cfg.PublishIdle, MinRate: cfg.PublishMinRate, Logger: o.log,
		})),
		// hearth member add/rm post new lists here; the site key's
		// signature is the authorization, as for Publish.
		Members:   gateway.NewMembers(members, true, o.log),
		Site:      gateway.NewSite(node.NewVerifyingStore(cfg.Store), o.root, gateway.SiteOptions{Logger: o.log, Observer: m, InjectLoader: cfg.InjectLoader}),
		Metrics:   m.Handler(),
		Dashboard: dash,
		Health:    o.health,
	}.Handler()
	return o, nil
}

// Site returns the site the origin serves.
func (o *Origin) Site() node.SiteID { return o.site }

// Feed returns the site's record feed.
func (o *Origin) Feed() *gateway.RecordFeed { return o.feed }

// Members returns the site's member-list feed.
func (o *Origin) Members() *gateway.MemberFeed { return o.members }

// Handler returns the origin's HTTP handler (routes: hosting.Routes.Handler).
func (o *Origin) Handler() http.Handler { return o.handler }

// Dashboard returns the operator dashboard, nil unless Config.Dashboard
// was set.
func (o *Origin) Dashboard() *dashboard.Dashboard { return o.dash }

// Close ends the open record event streams (and the dashboard's); call it
// when shutting down.
func (o *Origin) Close() {
	o.records.Close()
	if o.dash != nil {
		o.dash.Close()
	}
}

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
		if !o.scanned { // the first publish of the process, or a failed collection since
			o.retainLocked(ctx, cur)
		}
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
	o.retainLocked(ctx, rec)
	return rec, true, nil
}

// publishHandler runs h (uploads of new roots) one at a time with imports
// and collections, so that no collection sees an upload's blocks before its
// record; and pins what it accepted.
func (o *Origin) publishHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.publishMu.Lock()
		defer o.publishMu.Unlock()
		before := o.feed.Latest()
		h.ServeHTTP(w, r)
		if rec := o.feed.Latest(); rec != nil && rec != before {
			o.cfg.Metrics.RecordSeq.Set(float64(rec.Seq))
			o.retainLocked(context.WithoutCancel(r.Context()), rec)
		}
	})
}

// retainLocked pins the roots the retention keeps and collects garbage
// (Retain; scanning the whole store the first time, and after a failure).
// A failure is logged and retried at the next publish: the record is
// served all the same, and nothing is deleted that a pin keeps. The caller
// holds publishMu.
func (o *Origin) retainLocked(ctx context.Context, rec *node.RootRecord) {
	st, err := Retain(ctx, o.cfg.Store, rec, RetainOptions{Keep: o.cfg.Keep, KeepFor: o.cfg.KeepFor, Full: !o.scanned})
	o.cfg.Metrics.GCDeleted.Add(float64(st.Deleted))
	o.scanned = err == nil
	if err != nil {
		o.log.Error("pinning and collecting garbage", "seq", rec.Seq, "err", err)
		return
	}
	if st.Deleted > 0 || len(st.Unpinned) > 0 {
		o.log.Info("collected garbage", "unpinned", st.Unpinned, "deleted_blocks", st.Deleted)
	}
}

// Retention defaults (RetainOptions, Config).
const (
	DefaultKeep    = 3
	DefaultKeepFor = time.Hour
)

// RetainStats describes what Retain did.
type RetainStats struct {
	node.GCStats
	Unpinned []uint64 // sequences unpinned
}

// RetainOptions says which of a site's roots Retain keeps, and how it
// collects.
type RetainOptions struct {
	Keep    int           // the newest roots kept; 0: DefaultKeep
	KeepFor time.Duration // a replaced root is kept this long after; 0: DefaultKeepFor
	Now     time.Time     // zero: time.Now()
	// Full scans the whole store for blocks nothing keeps
	// (node.CollectGarbage): an interrupted import's, a store's from before
	// pins. Else only the unpinned roots' DAGs are walked
	// (node.CollectDropped), which reads their inner nodes, not the store.
	Full bool
}

// Retain keeps the roots of rec's site that its records name, up to rec:
// the Keep newest, and those replaced less than KeepFor before Now (by
// the records' publication times). Each whose DAG is whole in st is pinned
// (rec's must be); one that is not keeps the blocks it has for this
// collection. Every other pin of the site is removed, then the blocks
// nothing keeps are deleted; every other site's pins, and its newest
// record, are kept too (node.CollectGarbage). Pins are durable before any
// block is deleted. Errors: rec's DAG is incomplete (wrapping
// node.ErrNotFound), a pin is unreadable (node.ErrBadPin), or the store's.
func Retain(ctx context.Context, st Store, rec *node.RootRecord, o RetainOptions) (RetainStats, error) {
	var out RetainStats
	if o.Keep <= 0 {
		o.Keep = DefaultKeep
	}
	if o.KeepFor <= 0 {
		o.KeepFor = DefaultKeepFor
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	// The roots to keep, newest first: rec's, then by the records.
	keep := map[uint64]cid.Cid{rec.Seq: rec.Root}
	hist := node.NewRecordLog(st).History(rec.Site) // oldest first
	n := 0
	for i := len(hist) - 1; i >= 0; i-- {
		r := hist[i]
		if r.Seq >= rec.Seq {
			continue
		}
		n++
		replacedAt := rec.Published
		if i+1 < len(hist) {
			replacedAt = hist[i+1].Published
		}
		if n < o.Keep || o.Now.Sub(replacedAt) < o.KeepFor {
			keep[r.Seq] = r.Root
		}
	}
	pinned := make(map[uint64]cid.Cid)
	for _, p := range node.LoadPins(st, rec.Site) {
		pinned[p.Seq] = p.Root
	}
	live := make(map[string]struct{}) // what this collection keeps beside the pins
	for seq, root := range keep {
		if p, ok := pinned[seq]; ok && p.Equals(root) {
			continue
		}
		size, err := node.MarkDAG(ctx, st, root, nil, live)
		switch {
		case errors.Is(err, node.ErrNotFound) && seq != rec.Seq:
			if err := node.MarkPresent(ctx, st, root, nil, live); err != nil {
				return out, err
			}
			continue
		case err != nil:
			return out, fmt.Errorf("pinning %s: %w", root, err)
		}
		if err := node.PutPin(st, rec.Site, node.Pin{Seq: seq, Root: root, Bytes: size}); err != nil {
			return out, err
		}
	}
	var dropped []cid.Cid
	for seq, root := range pinned {
		if _, ok := keep[seq]; ok {
			continue
		}
		if err := node.DeletePin(st, rec.Site, seq); err != nil {
			return out, err
		}
		out.Unpinned = append(out.Unpinned, seq)
		dropped = append(dropped, root)
	}
	slices.Sort(out.Unpinned)
	var err error
	if o.Full {
		out.GCStats, err = node.CollectGarbage(ctx, st, live, rec.Site)
	} else {
		out.GCStats, err = node.CollectDropped(ctx, st, dropped, live, rec.Site)
	}
	return out, err
}
