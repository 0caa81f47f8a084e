package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

func newGetCmd() *cobra.Command {
	var storeDir, out, from, relayURL string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "get [--store DIR] CID[/path] [-o OUT]  |  get --from URL[,URL...] SITE[/path] [-o OUT]",
		Short: "Write a file or tree from the store, or fetch a site from its origin or seeders; verifying every block",
		Long: `Without --from, write CID[/path] from the local store.

With --from, fetch SITE's latest root record from every URL (origin or
seeders), keep the valid one with the highest sequence (refusing one older
than a record seen before), then fetch the blocks of SITE[/path] that the
store lacks into --store, verifying each, moving to the next URL when one
fails, is too slow or lies; and write the result.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if relayURL != "" {
				return getRelay(cmd, storeDir, relayURL, from, args[0], out, timeout)
			}
			if from != "" {
				return getRemote(cmd, storeDir, from, args[0], out, timeout)
			}
			root, segs, err := parseContentPath(args[0])
			if err != nil {
				return err
			}
			st, err := openStore(storeDir)
			if err != nil {
				return err
			}
			defer st.Close()
			g := node.NewVerifyingStore(st)
			n, err := node.Resolve(cmd.Context(), g, root, segs)
			if err != nil {
				return fmt.Errorf("resolving %s: %w", args[0], err)
			}
			if out == "" || out == "-" {
				if !n.IsFile() {
					return fmt.Errorf("%s is a %s: give -o DIR", args[0], n.Kind)
				}
				return node.WriteFile(cmd.Context(), g, n, 0, n.FileSize, cmd.OutOrStdout())
			}
			return writeEntity(cmd.Context(), g, n, out)
		},
	}
	addStoreFlag(cmd, &storeDir)
	cmd.Flags().StringVarP(&out, "output", "o", "", "file or directory to write (default: stdout for a file)")
	cmd.Flags().StringVar(&from, "from", "", "comma-separated base URLs of the origin or seeders to fetch SITE from")
	cmd.Flags().StringVar(&relayURL, "relay", "", "relay WebSocket URL: fetch SITE from peers over WebRTC (with --from as the fallback)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "with --from: longest wait for one block (or the next block of a stream) before trying another source")
	return cmd
}

// getRemote implements get --from: record, then blocks, then output.
func getRemote(cmd *cobra.Command, storeDir, from, arg, out string, timeout time.Duration) error {
	ctx := cmd.Context()
	log := slog.Default()
	site, segs, err := parseSitePath(arg)
	if err != nil {
		return err
	}
	sources, err := gateway.ParseSources(from)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	st, err := openStore(storeDir)
	if err != nil {
		return err
	}
	defer st.Close()
	f, err := gateway.NewFetcher(sources, gateway.FetcherOptions{Logger: log, RequestTimeout: timeout, IdleTimeout: timeout})
	if err != nil {
		return err
	}
	rec, errs, err := f.BestRecord(ctx, site)
	for i, e := range errs {
		if e != nil && rec != nil {
			log.Warn("source gave no valid root record", "source", sources[i], "err", e)
		}
	}
	if err != nil {
		return fmt.Errorf("no valid root record for %s: %w", site, err)
	}
	if err := acceptRemoteRecord(node.NewRecordLog(st), rec); err != nil {
		return err
	}
	log.Info("root record", "site", site.String(), "seq", rec.Seq, "root", rec.Root.String(), "published", rec.Published)
	term, stats, err := gateway.NewReplicator(f, st, gateway.ReplicatorOptions{Logger: log}).Replicate(ctx, rec.Root, segs)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", arg, err)
	}
	log.Info("fetched", "blocks", stats.Blocks, "bytes", stats.Bytes, "downloaded_blocks", stats.Fetched, "downloaded_bytes", stats.FetchedBytes)
	g := node.NewVerifyingStore(st)
	n, err := node.Resolve(ctx, g, term, nil)
	if err != nil {
		return err
	}
	if out == "" || out == "-" {
		if !n.IsFile() {
			return fmt.Errorf("%s is a %s: give -o DIR", arg, n.Kind)
		}
		return node.WriteFile(ctx, g, n, 0, n.FileSize, cmd.OutOrStdout())
	}
	return writeEntity(ctx, g, n, out)
}

// acceptRemoteRecord checks rec against the records this store has seen
// for the site: never go back to an older sequence (a replayed record),
// never accept two different records with one sequence.
func acceptRemoteRecord(rl *node.RecordLog, rec *node.RootRecord) error {
	cur, err := rl.Latest(rec.Site)
	switch {
	case errors.Is(err, node.ErrNotFound):
	case err != nil:
		return err
	case rec.Seq < cur.Seq:
		return fmt.Errorf("the sources' newest record for %s has seq %d, but seq %d was seen before (an old record replayed?): %w",
			rec.Site, rec.Seq, cur.Seq, node.ErrStaleRecord)
	case rec.Seq == cur.Seq:
		if !bytes.Equal(rec.Bytes(), cur.Bytes()) {
			return fmt.Errorf("two different records for %s with seq %d: %w", rec.Site, rec.Seq, node.ErrBadRecord)
		}
		return nil
	}
	return rl.Accept(rec)
}

// parseSitePath splits "SITE/a/b" (optionally with a leading /) into the
// site ID and path segments.
func parseSitePath(s string) (node.SiteID, []string, error) {
	siteText, rest, _ := strings.Cut(strings.TrimPrefix(s, "/"), "/")
	site, err := node.ParseSiteID(siteText)
	if err != nil {
		return site, nil, err
	}
	segs, err := node.SplitPath(rest)
	return site, segs, err
}

// parseContentPath splits "CID/a/b" (optionally prefixed by /ipfs/) into the
// root CID and path segments.
func parseContentPath(s string) (cid.Cid, []string, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "/ipfs/"), "ipfs://")
	head, rest, _ := strings.Cut(s, "/")
	c, err := node.ParseCID(head)
	if err != nil {
		return cid.Undef, nil, err
	}
	segs, err := node.SplitPath(rest)
	if err != nil {
		return cid.Undef, nil, err
	}
	return c, segs, nil
}

// writeEntity writes a file or a directory tree to path, creating it. A file
// is written to a temporary name and renamed, so a failed get leaves no
// partial file behind.
func writeEntity(ctx context.Context, g node.Getter, n *node.Node, path string) error {
	switch {
	case n.IsFile():
		return writeFileAtomic(ctx, g, n, path)
	case n.IsDir():
		if err := os.MkdirAll(path, 0o755); err != nil {
			return err
		}
		for e, err := range node.Entries(ctx, g, n) {
			if err != nil {
				return err
			}
			child, _, err := node.GetNode(ctx, g, e.Cid)
			if err != nil {
				return fmt.Errorf("%s: %w", filepath.Join(path, e.Name), err)
			}
			if err := writeEntity(ctx, g, child, filepath.Join(path, e.Name)); err != nil {
				return err
			}
		}
		return nil
	case n.Kind == node.KindSymlink:
		return os.Symlink(string(n.Data), path)
	}
	return fmt.Errorf("%s: cannot write a %s", path, n.Kind)
}

func writeFileAtomic(ctx context.Context, g node.Getter, n *node.Node, path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".hearth-get-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	var w io.Writer = f
	if err := node.WriteFile(ctx, g, n, 0, n.FileSize, w); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
