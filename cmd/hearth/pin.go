package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	cid "github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

func newPinCmd() *cobra.Command {
	var storeDir string
	cmd := &cobra.Command{
		Use:   "pin",
		Short: "List, add or remove the pins that keep roots through garbage collection",
		Long: `Pins keep a root's whole DAG through garbage collection. A site's roots
are pinned by the origin and seeders, which also unpin them (--keep,
--keep-for); roots pinned by CID (hearth publish without --key, hearth car
import, hearth pin add) stay until hearth pin rm.`,
	}
	ls := &cobra.Command{
		Use:   "ls [--store DIR]",
		Short: "List every pin: site and sequence (or \"cid\"), root, DAG size in bytes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStore(storeDir)
			if err != nil {
				return err
			}
			defer st.Close()
			pins, err := node.ListPins(st)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			for _, p := range pins {
				owner := "cid"
				if !p.ByCID() {
					owner = fmt.Sprintf("%s/%d", p.Site, p.Seq)
				}
				fmt.Fprintf(w, "%s\t%s\t%d\n", owner, p.Root, p.Bytes)
			}
			return w.Flush()
		},
	}
	// onRoot is a subcommand on one root CID in the store.
	onRoot := func(use, short string, f func(cmd *cobra.Command, st *pebblestore.Store, root cid.Cid) error) *cobra.Command {
		return &cobra.Command{
			Use: use + " [--store DIR] CID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				root, st, err := openStoreFor(storeDir, args[0])
				if err != nil {
					return err
				}
				defer st.Close()
				return f(cmd, st, root)
			},
		}
	}
	add := onRoot("add", "Pin a root by CID; its whole DAG must be in the store", func(cmd *cobra.Command, st *pebblestore.Store, root cid.Cid) error {
		if _, err := node.PinWhole(cmd.Context(), st, root); err != nil {
			return fmt.Errorf("%w (is the DAG whole here? hearth get it first)", err)
		}
		return nil
	})
	rm := onRoot("rm", "Remove a root's pin by CID; its blocks go at the next collection", func(_ *cobra.Command, st *pebblestore.Store, root cid.Cid) error {
		ok, err := node.UnpinCID(st, root)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s is not pinned by CID (a site's roots are unpinned by its origin or seeder): %w", root, errNotPinned)
		}
		return nil
	})
	for _, c := range []*cobra.Command{ls, add, rm} {
		addStoreFlag(c, &storeDir)
		cmd.AddCommand(c)
	}
	return cmd
}

var errNotPinned = errors.New("not pinned")

func newGCCmd() *cobra.Command {
	var storeDir string
	cmd := &cobra.Command{
		Use:   "gc [--store DIR]",
		Short: "Delete every block no pin keeps (nor any site's newest record); print what was deleted",
		Long: `Scan the store and delete every block that no pin reaches, of any site,
nor the newest root record of any site the store holds records for. It
refuses to delete anything if a pin is unreadable or names a DAG that is
not whole. Blocks fetched by hearth get are a cache and go too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStore(storeDir)
			if err != nil {
				return err
			}
			defer st.Close()
			stats, err := node.CollectGarbage(cmd.Context(), st, nil)
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %d blocks, kept %d\n", stats.Deleted, stats.Kept)
			return err
		},
	}
	addStoreFlag(cmd, &storeDir)
	return cmd
}
