package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/exchange"
	"github.com/hearthcdn/hearth/node/exchange/relaysig"
	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/node/unpack"
	relayclient "github.com/hearthcdn/hearth/relay/client"
)

// getRelay implements get --relay: the root record (from the --from
// sources if given, else from the relay), then the blocks from peers found
// through the relay over WebRTC, every one verified, falling back to the
// --from sources when no peer answers; then the output.
func getRelay(cmd *cobra.Command, storeDir, relayURL, from, arg, out string, timeout time.Duration, wopts unpack.Options) error {
	ctx := cmd.Context()
	log := slog.Default()
	site, segs, err := parseSitePath(arg)
	if err != nil {
		return err
	}
	st, err := openStore(storeDir)
	if err != nil {
		return err
	}
	defer st.Close()

	rc, err := relayclient.New(relayclient.Config{URL: relayURL, Logger: log})
	if err != nil {
		return fmt.Errorf("--relay: %w", err)
	}
	defer rc.Close()
	readyCtx, cancel := context.WithTimeout(ctx, timeout)
	err = rc.WaitReady(readyCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("connecting to the relay: %w", err)
	}

	var fallback exchange.Fallback
	var rec *node.RootRecord
	if from != "" {
		sources, err := gateway.ParseSources(from)
		if err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		gw, err := gateway.NewFetcher(sources, gateway.FetcherOptions{Logger: log, RequestTimeout: timeout, IdleTimeout: timeout})
		if err != nil {
			return err
		}
		fallback = gw
		if rec, _, err = gw.BestRecord(ctx, site); err != nil {
			log.Warn("no root record from --from; asking the relay", "err", err)
			rec = nil
		}
	}
	if rec == nil {
		if rec, err = relayRecord(ctx, rc, site, timeout); err != nil {
			return err
		}
	}
	if err := acceptRemoteRecord(node.NewRecordLog(st), rec); err != nil {
		return err
	}
	log.Info("root record", "site", site.String(), "seq", rec.Seq, "root", rec.Root.String(), "published", rec.Published)

	sig := relaysig.New(rc, log)
	tr, err := exchange.NewTransport(exchange.TransportConfig{Signaler: sig, ICESource: relaysig.ICESource(rc), Logger: log})
	if err != nil {
		return err
	}
	defer tr.Close()
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = sig.Run(runCtx, tr)
	}()
	defer func() { stop(); wg.Wait() }()
	f, err := exchange.NewFetcher(exchange.FetcherConfig{
		Site: site.String(), Store: st, Dialer: tr, Finder: sig, Fallback: fallback,
		StallTimeout: timeout, Logger: log,
	})
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	res, err := f.Fetch(ctx, node.Request{Root: rec.Root, Path: segs, Scope: node.ScopeAll})
	if err != nil {
		return fmt.Errorf("fetching %s: %w", arg, err)
	}
	for _, p := range f.Peers() {
		log.Info("peer", "peer", p.ID, "bytes", p.BytesIn, "banned", p.Banned)
	}
	log.Info("fetched", "took", time.Since(start).String())
	g := node.NewVerifyingStore(st)
	if out == "" || out == "-" {
		if !res.Node.IsFile() {
			return fmt.Errorf("%s is a %s: give -o DIR", arg, res.Node.Kind)
		}
		return node.WriteFile(ctx, g, res.Node, 0, res.Node.FileSize, cmd.OutOrStdout())
	}
	return unpack.Write(ctx, g, res.Node, out, wopts)
}

// relayRecord returns the latest root record of site the relay holds (the
// relay client verifies it).
func relayRecord(ctx context.Context, rc *relayclient.Client, site node.SiteID, timeout time.Duration) (*node.RootRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sub, err := rc.Subscribe(ctx, site)
	if err != nil {
		return nil, fmt.Errorf("subscribing to %s: %w", site, err)
	}
	defer sub.Close()
	select {
	case rec, ok := <-sub.Records():
		if !ok {
			return nil, fmt.Errorf("root record of %s: subscription closed", site)
		}
		return rec, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("no root record of %s from the relay: %w", site, errors.Join(ctx.Err(), node.ErrNotFound))
	}
}
