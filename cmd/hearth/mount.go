package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/fuse"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/exchange"
	"github.com/hearthcdn/hearth/node/exchange/relaysig"
	"github.com/hearthcdn/hearth/node/gateway"
	relayclient "github.com/hearthcdn/hearth/relay/client"
)

func newMountCmd() *cobra.Command {
	var storeDir, origins, keyFile, relayURL string
	var quiet, readTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "mount SITE MOUNTPOINT [--store DIR] [--relay URL | --origin URL[,URL...]] [--key FILE]",
		Short: "Mount a site's latest root with FUSE: read lazily, verified; with --key, write to publish",
		Long: `Mount shows the site's latest root at MOUNTPOINT. Listings and stat come from the
DAG; file bytes the store lacks are fetched from peers found through --relay
(over WebRTC) and/or from --origin (an origin or seeders), verified and kept. New roots published elsewhere appear at once.

With --key (the site key) the mount is writable. After --quiet without changes, or
on fsync, a new root is built incrementally, signed as the next root record and
published to the first --origin, which seeders follow. Unmount with Ctrl-C or
fusermount3 -u MOUNTPOINT.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			site, err := node.ParseSiteID(args[0])
			if err != nil {
				return err
			}
			var key ed25519.PrivateKey
			if keyFile != "" {
				if key, err = node.ReadKeyFile(keyFile); err != nil {
					return err
				}
				if node.SiteIDOf(key.Public().(ed25519.PublicKey)) != site {
					return fmt.Errorf("--key is not the key of site %s", site)
				}
			}
			srcs, err := gateway.ParseSources(origins)
			if err != nil && origins != "" {
				return err
			}
			st, err := openStore(storeDir)
			if err != nil {
				return err
			}
			defer st.Close()
			log := node.NewRecordLog(st)
			var fetcher *gateway.Fetcher
			if len(srcs) > 0 {
				if fetcher, err = gateway.NewFetcher(srcs, gateway.FetcherOptions{}); err != nil {
					return err
				}
			}
			var bf fuse.BlockFetcher = blockFetcher{fetcher}
			var rec *node.RootRecord
			if relayURL != "" {
				sw, err := startSwarmFetch(cmd.Context(), st, site, relayURL, fetcher)
				if err != nil {
					return err
				}
				defer sw.close()
				bf = sw
				if fetcher == nil {
					if rec, err = relayRecord(cmd.Context(), sw.rc, site, 30*time.Second); err != nil {
						return err
					}
					if err := acceptRemoteRecord(log, rec); err != nil {
						return err
					}
				}
			}
			if rec == nil {
				if rec, err = latestRecord(cmd.Context(), fetcher, log, site); err != nil {
					return err
				}
			}
			rs := &recordingStore{GCStore: st}
			opts := fuse.Options{
				Getter:      &fuse.FetchingGetter{Store: st, Fetcher: bf},
				Root:        rec.Root,
				ReadTimeout: readTimeout,
				Name:        "hearth:" + site.String(),
			}
			if key != nil {
				opts.Writable = true
				opts.Store = rs
				opts.ScratchDir = filepath.Join(storeDirOrDefault(storeDir), "scratch")
				opts.QuietPeriod = quiet
				opts.Keep = func() []cid.Cid { return recentRoots(log, site, 3) }
				opts.Commit = func(ctx context.Context, root cid.Cid) error {
					r, err := log.SignNext(key, root, time.Now())
					if err != nil {
						return err
					}
					slog.Info("new root", "seq", r.Seq, "root", root)
					if len(srcs) == 0 {
						return nil
					}
					sent := rs.drain()
					if err := gateway.PublishRoot(ctx, nil, srcs[0], r, st, sent); err != nil {
						rs.restore(sent)
						return err
					}
					slog.Info("published", "seq", r.Seq, "to", srcs[0])
					return nil
				}
			}
			mnt := args[1]
			fsys, err := fuse.Mount(mnt, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "mounted %s (root %s, seq %d) at %s\n", site, rec.Root, rec.Seq, mnt)

			ctx, cancel := context.WithCancel(cmd.Context())
			var wg sync.WaitGroup
			if len(srcs) > 0 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					followRecords(ctx, srcs[0], site, log, rec.Seq, fsys)
				}()
			}
			unmounted := make(chan struct{})
			go func() { fsys.Wait(); close(unmounted) }()
			select {
			case <-ctx.Done():
			case <-unmounted:
			}
			cancel()
			wg.Wait()
			select {
			case <-unmounted:
				return nil
			default:
				return fsys.Unmount()
			}
		},
	}
	addStoreFlag(cmd, &storeDir)
	cmd.Flags().StringVar(&origins, "origin", "", "origin or seeder base URLs, comma-separated, to fetch from (and publish to the first)")
	cmd.Flags().StringVar(&keyFile, "key", "", "site key: mount read-write and publish new roots")
	cmd.Flags().StringVar(&relayURL, "relay", "", "relay WebSocket URL: fetch blocks from peers over WebRTC (with --origin as fallback)")
	cmd.Flags().DurationVar(&quiet, "quiet", 2*time.Second, "build a new root after this long without changes")
	cmd.Flags().DurationVar(&readTimeout, "read-timeout", 30*time.Second, "fail a read with EIO after this long without the data")
	return cmd
}

func storeDirOrDefault(dir string) string {
	if dir == "" {
		return defaultStoreDir()
	}
	return dir
}

// latestRecord returns the newest verified record from the sources, stored
// into log, or the newest in log when no source answers.
func latestRecord(ctx context.Context, f *gateway.Fetcher, log *node.RecordLog, site node.SiteID) (*node.RootRecord, error) {
	local, lerr := log.Latest(site)
	if f != nil {
		rec, _, err := f.BestRecord(ctx, site)
		if err == nil {
			if aerr := log.Accept(rec); aerr == nil || errors.Is(aerr, node.ErrStaleRecord) {
				if local == nil || rec.Seq > local.Seq {
					return rec, nil
				}
			}
		} else if lerr != nil {
			return nil, fmt.Errorf("no record for %s: %w", site, err)
		}
	}
	if lerr != nil {
		return nil, fmt.Errorf("no record for %s held locally and no --origin: %w", site, lerr)
	}
	return local, nil
}

// followRecords applies newer records from base's event stream to the
// mount, reconnecting with jittered backoff until ctx ends.
func followRecords(ctx context.Context, base string, site node.SiteID, log *node.RecordLog, since uint64, fsys *fuse.FS) {
	backoff := time.Second
	for ctx.Err() == nil {
		err := gateway.FollowEvents(ctx, nil, base, site, since, 0, func(raw []byte) {
			rec, err := node.ParseRootRecordFor(site, raw)
			if err != nil {
				slog.Warn("refused record", "err", err)
				return
			}
			if err := log.Accept(rec); err != nil && !errors.Is(err, node.ErrStaleRecord) {
				slog.Warn("storing record failed", "err", err)
				return
			}
			if rec.Seq > since {
				since = rec.Seq
				fsys.SetRoot(rec.Root)
				slog.Info("root changed", "seq", rec.Seq, "root", rec.Root)
			}
		})
		if ctx.Err() != nil {
			return
		}
		slog.Debug("record stream ended", "err", err)
		t := time.NewTimer(backoff + rand.N(backoff))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// recentRoots returns the roots of site's newest n records.
func recentRoots(log *node.RecordLog, site node.SiteID, n int) []cid.Cid {
	h := log.History(site)
	var out []cid.Cid
	for i := len(h) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, h[i].Root)
	}
	return out
}

// swarmFetch fetches blocks from peers found through a relay, over WebRTC,
// falling back to the gateway sources when no peer answers.
type swarmFetch struct {
	rc   *relayclient.Client
	tr   *exchange.Transport
	f    *exchange.Fetcher
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func startSwarmFetch(ctx context.Context, st node.Blockstore, site node.SiteID, relayURL string, gw *gateway.Fetcher) (*swarmFetch, error) {
	rc, err := relayclient.New(relayclient.Config{URL: relayURL, Logger: slog.Default()})
	if err != nil {
		return nil, fmt.Errorf("--relay: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = rc.WaitReady(wctx)
	cancel()
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("connecting to the relay: %w", err)
	}
	sig := relaysig.New(rc, slog.Default())
	tr, err := exchange.NewTransport(exchange.TransportConfig{Signaler: sig, ICESource: relaysig.ICESource(rc), Logger: slog.Default()})
	if err != nil {
		rc.Close()
		return nil, err
	}
	var fallback exchange.Fallback
	if gw != nil {
		fallback = gw
	}
	f, err := exchange.NewFetcher(exchange.FetcherConfig{Site: site.String(), Store: st, Dialer: tr, Finder: sig, Fallback: fallback, Logger: slog.Default()})
	if err != nil {
		tr.Close()
		rc.Close()
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.Background())
	s := &swarmFetch{rc: rc, tr: tr, f: f, stop: stop}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = sig.Run(runCtx, tr)
	}()
	return s, nil
}

// FetchBlock implements fuse.BlockFetcher.
func (s *swarmFetch) FetchBlock(ctx context.Context, c cid.Cid) ([]byte, error) {
	return s.f.Get(ctx, c)
}

func (s *swarmFetch) close() {
	s.f.Close()
	s.stop()
	s.wg.Wait()
	s.tr.Close()
	s.rc.Close()
}

// blockFetcher adapts a gateway.Fetcher (possibly nil) to fuse.BlockFetcher.
type blockFetcher struct{ f *gateway.Fetcher }

func (b blockFetcher) FetchBlock(ctx context.Context, c cid.Cid) ([]byte, error) {
	if b.f == nil {
		return nil, fmt.Errorf("%s: %w (no --origin to fetch from)", c, node.ErrNotFound)
	}
	return b.f.Block(ctx, c)
}

// recordingStore remembers the CIDs put since the last drain: the blocks
// of new roots, to send with their record. It keeps the store's metadata
// in view, so that the mount's garbage collection keeps every pin in the
// store (fuse collects through node.CollectDropped on a node.GCStore).
type recordingStore struct {
	node.GCStore
	mu   sync.Mutex
	puts []cid.Cid
}

var _ node.GCStore = (*recordingStore)(nil)

func (r *recordingStore) Put(ctx context.Context, c cid.Cid, data []byte) error {
	if err := r.GCStore.Put(ctx, c, data); err != nil {
		return err
	}
	r.mu.Lock()
	r.puts = append(r.puts, c)
	r.mu.Unlock()
	return nil
}

func (r *recordingStore) PutMany(ctx context.Context, bs []node.Block) error {
	if err := r.GCStore.PutMany(ctx, bs); err != nil {
		return err
	}
	r.mu.Lock()
	for _, b := range bs {
		r.puts = append(r.puts, b.Cid)
	}
	r.mu.Unlock()
	return nil
}

// drain returns the recorded CIDs and forgets them.
func (r *recordingStore) drain() []cid.Cid {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.puts
	r.puts = nil
	return out
}

// restore records cs again, after a failed publish.
func (r *recordingStore) restore(cs []cid.Cid) {
	r.mu.Lock()
	r.puts = append(cs, r.puts...)
	r.mu.Unlock()
}
