package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/exchange"
	"github.com/hearthcdn/hearth/node/exchange/relaysig"
	"github.com/hearthcdn/hearth/node/seeder"
	"github.com/hearthcdn/hearth/relay"
	relayclient "github.com/hearthcdn/hearth/relay/client"
)

// seedRelayFlags are `hearth seed`'s flags for serving over WebRTC through
// a relay (node/exchange).
type seedRelayFlags struct {
	url, keyFile, upload  string
	maxPeers, maxRequests int
	relayOnly             bool
}

func addSeedRelayFlags(cmd *cobra.Command) *seedRelayFlags {
	rf := &seedRelayFlags{}
	f := cmd.Flags()
	f.StringVar(&rf.url, "relay", "", "relay WebSocket URL (wss://…/ws): announce the site there and serve its blocks to peers over WebRTC")
	f.StringVar(&rf.keyFile, "node-key", "", "with --relay: this node's key file (hearth keygen); default: a fresh key per run")
	f.IntVar(&rf.maxPeers, "max-peers", 64, "with --relay: most peers served at once")
	f.IntVar(&rf.maxRequests, "max-requests", 32, "with --relay: most concurrent requests per peer")
	f.StringVar(&rf.upload, "max-upload", "", "with --relay: cap the upload rate to peers at SIZE per second")
	f.BoolVar(&rf.relayOnly, "relay-only", false, "with --relay: reach peers only through the relay's TURN server (ICE policy \"relay\"), so that no peer and not the relay's signalling learns this machine's addresses")
	return rf
}

// wire sets up the exchange for `hearth seed --relay`: the returned handler
// adds the exchange's per-peer accounting at /metrics/exchange, and run
// (nil without --relay) connects to the relay, announces the pinned roots,
// answers offers and serves blocks from st until ctx ends.
func (rf *seedRelayFlags) wire(site node.SiteID, st seedStore, s *seeder.Seeder, h http.Handler, log *slog.Logger) (http.Handler, func(context.Context) error, error) {
	if rf.url == "" {
		if rf.relayOnly {
			return nil, nil, errors.New("--relay-only needs --relay")
		}
		return h, nil, nil
	}
	upload, err := parseSize(strings.TrimSuffix(rf.upload, "/s"))
	if err != nil {
		return nil, nil, fmt.Errorf("--max-upload: %w", err)
	}
	var key ed25519.PrivateKey
	if rf.keyFile != "" {
		if key, err = node.ReadKeyFile(rf.keyFile); err != nil {
			return nil, nil, fmt.Errorf("--node-key: %w", err)
		}
	}
	srv, err := exchange.NewServer(exchange.ServerConfig{
		Store: st, MaxPeers: rf.maxPeers, MaxRequestsPerPeer: rf.maxRequests, UploadRate: upload, Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(srv); err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics/exchange", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/", h)
	run := func(ctx context.Context) error {
		defer srv.Close()
		rc, err := relayclient.New(relayclient.Config{URL: rf.url, Key: key, Logger: log})
		if err != nil {
			return fmt.Errorf("--relay: %w", err)
		}
		defer rc.Close()
		sig := relaysig.New(rc, log)
		tr, err := exchange.NewTransport(exchange.TransportConfig{Signaler: sig, Handler: srv, ICESource: relaysig.ICESource(rc),
			RelayOnly: rf.relayOnly, Logger: log})
		if err != nil {
			return err
		}
		defer tr.Close()
		log.Info("serving peers through the relay", "relay", rf.url, "node", rc.ID().String(), "relay_only", rf.relayOnly)
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return sig.Run(ctx, tr) })
		if rf.relayOnly {
			g.Go(func() error { warnNoTURN(ctx, rc, rf.url, log); return nil })
		}
		g.Go(func() error { return announceLoop(ctx, rc, site, s, node.NewRecordLog(st), srv, rf.maxPeers, log) })
		err = g.Wait()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return mux, run, nil
}

// warnNoTURN logs a warning when the relay's ice answer offers no TURN
// server: a relayed-only seeder then accepts no connection at all.
func warnNoTURN(ctx context.Context, rc *relayclient.Client, url string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a, err := rc.CachedICEServers(ctx)
	if err != nil {
		return // the relay is not reachable yet; each connection asks again
	}
	for _, s := range a.Servers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
				return
			}
		}
	}
	log.Warn("--relay-only, but the relay offers no TURN server: no peer can connect until it does", "relay", url)
}

// seedStore is what the exchange wiring needs of the seeder's store: its
// blocks, and the root records kept beside them.
type seedStore interface {
	node.Getter
	node.MetaStore
}

// announceInterval is how often pins and capacity are looked at; the
// announcement is sent again only when they changed (and the relay client
// restores it by itself after a reconnection).
const announceInterval = 2 * time.Second

// announceLoop announces the seeder's pinned roots and its free capacity,
// again whenever they change, and passes the newest root record on to the
// relay (which checks it), so peers can learn the root without the origin.
func announceLoop(ctx context.Context, rc *relayclient.Client, site node.SiteID, s *seeder.Seeder, rl *node.RecordLog, srv *exchange.Server, maxPeers int, log *slog.Logger) error {
	var last *relayclient.Announcement
	var published uint64
	tick := time.NewTicker(announceInterval)
	defer tick.Stop()
	for {
		if rec, err := rl.Latest(site); err == nil && rec.Seq > published {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := rc.PublishRecord(pctx, rec)
			cancel()
			if err == nil || errors.Is(err, relay.ErrStaleRecord) {
				published = rec.Seq
			} else {
				log.Warn("passing the root record to the relay failed", "err", err)
			}
		}
		var roots []cid.Cid
		for _, p := range s.Pins() {
			if len(roots) < relay.MaxRootsPerSite {
				roots = append(roots, p.Root)
			}
		}
		connected := 0
		for _, p := range srv.Stats() {
			if p.Connected {
				connected++
			}
		}
		a := relayclient.Announcement{Role: relay.RoleSeeder, Capacity: max(maxPeers-connected, 0)}
		if len(roots) > 0 { // nothing to serve before the first root is replicated
			a.Sites = []relayclient.SiteRoots{{Site: site, Roots: roots}}
		}
		if last == nil || last.Capacity != a.Capacity || !sameSites(last.Sites, a.Sites) {
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := rc.Announce(actx, a)
			cancel()
			if err != nil {
				log.Warn("announcing to the relay failed", "err", err)
			} else {
				last = &a
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func sameSites(a, b []relayclient.SiteRoots) bool {
	return slices.EqualFunc(a, b, func(x, y relayclient.SiteRoots) bool {
		return x.Site == y.Site && slices.EqualFunc(x.Roots, y.Roots, func(p, q cid.Cid) bool { return p.Equals(q) })
	})
}
