package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/hosting"
	"github.com/hearthcdn/hearth/node/origin"
)

func newOriginCmd() *cobra.Command {
	var storeDir, keyFile, listen, src, addrFile string
	var watch bool
	var debounce time.Duration
	var keep int
	var keepFor time.Duration
	var maxPublish string
	var browser *browserFlags // browser client flags, set below (origin_browser.go)
	var streams *eventStreamFlags
	var dash *dashboardFlags
	cmd := &cobra.Command{
		Use:   "origin --key FILE [--store DIR] [--listen ADDR] [--site SRC [--watch]]",
		Short: "Serve a site: its files, signed root records (with push) and a trustless gateway",
		Long: `Serve the site of --key: its files at their paths from the latest root,
the latest root record and the record history at /.well-known/hearth/SITE/,
a record event stream, the IPFS Trustless Gateway at /ipfs/, /metrics,
/healthz and the operator dashboard (--dashboard). With --site SRC, publish SRC first (signing a new record if its
root changed); with --watch, republish whenever SRC changes. Each new root
is pinned; older ones are unpinned past --keep and --keep-for, and blocks
no pin keeps are deleted (other sites' pins in the store are kept).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if watch && src == "" {
				return errUsage("--watch needs --site SRC")
			}
			key, err := node.ReadKeyFile(keyFile)
			if err != nil {
				return err
			}
			st, err := openStore(storeDir)
			if err != nil {
				return err
			}
			defer st.Close()
			maxPub, err := parseSize(maxPublish)
			if err != nil {
				return fmt.Errorf("--max-publish: %w", err)
			}
			log := slog.Default()
			dashOpts, err := dash.options()
			if err != nil {
				return err
			}
			client, err := browser.client(node.SiteIDOf(key.Public().(ed25519.PublicKey)), nil, log)
			if err != nil {
				return err
			}
			o, err := origin.New(origin.Config{Store: st, Key: key, Source: src, Debounce: debounce, Keep: keep, KeepFor: keepFor,
				InjectLoader: browser.inject(client), EventStreams: streams.limits(), MaxPublish: maxPub, Logger: log,
				Dashboard: dashOpts})
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if src != "" {
				if _, _, err := o.Publish(ctx); err != nil {
					return err
				}
			} else if o.Feed().Latest() == nil {
				log.Warn("nothing published for this site yet: pass --site SRC or run hearth publish --key", "site", o.Site().String())
			}
			ln, err := hosting.Listen(listen, addrFile)
			if err != nil {
				return err
			}
			// The browser client: /.hearth/ in front of the origin's routes.
			handler := withClient(o.Handler(), client)
			log.Info("origin serving", "addr", ln.Addr().String(), "site", o.Site().String())
			g, ctx := errgroup.WithContext(ctx)
			g.Go(func() error { return hosting.Serve(ctx, ln, handler, log, o.Close) })
			if d := o.Dashboard(); d != nil {
				log.Info("operator dashboard", "url", dash.url(ln.Addr()))
				g.Go(func() error { return d.Run(ctx) })
			}
			if watch {
				g.Go(func() error { return o.Watch(ctx) })
			}
			for _, u := range browser.relays {
				g.Go(func() error { return pushRecords(ctx, u, o.Feed(), o.Members(), log) })
			}
			return g.Wait()
		},
	}
	addStoreFlag(cmd, &storeDir)
	browser = addBrowserFlags(cmd, true)
	cmd.Flags().StringVar(&keyFile, "key", "site.key", "site key file (from hearth keygen)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to serve HTTP on (port 0: any free port)")
	cmd.Flags().StringVar(&src, "site", "", "file or directory to publish at start")
	cmd.Flags().BoolVar(&watch, "watch", false, "republish --site whenever it changes")
	cmd.Flags().DurationVar(&debounce, "debounce", 500*time.Millisecond, "with --watch: quiet time before republishing")
	addRetentionFlags(cmd, &keep, &keepFor)
	streams = addEventStreamFlags(cmd)
	dash = addDashboardFlags(cmd)
	cmd.Flags().StringVar(&maxPublish, "max-publish", "4GiB", "refuse an upload (POST .../publish, from hearth mount --key) whose body exceeds SIZE (413)")
	cmd.Flags().StringVar(&addrFile, "addr-file", "", "write the bound address to this file once listening")
	return cmd
}

// errBadUsage marks errors in how a command was invoked.
var errBadUsage = errors.New("usage")

func errUsage(msg string) error { return fmt.Errorf("%w: %s", errBadUsage, msg) }
