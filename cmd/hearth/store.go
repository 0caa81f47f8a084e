package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// defaultStoreDir is --store's default: $HEARTH_STORE, else
// $XDG_DATA_HOME/hearth, else ~/.local/share/hearth.
func defaultStoreDir() string {
	if d := os.Getenv("HEARTH_STORE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "hearth")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "hearth-store"
	}
	return filepath.Join(home, ".local", "share", "hearth")
}

func addStoreFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "store", "", "block store directory (default $HEARTH_STORE, $XDG_DATA_HOME/hearth or ~/.local/share/hearth)")
}

// addRetentionFlags adds the flags of how long an origin keeps replaced
// roots (origin.Config.Keep, KeepFor).
func addRetentionFlags(cmd *cobra.Command, keep *int, keepFor *time.Duration) {
	cmd.Flags().IntVar(keep, "keep", 3, "with a site key: how many of the newest roots stay pinned")
	cmd.Flags().DurationVar(keepFor, "keep-for", time.Hour, "with a site key: keep a replaced root pinned this long after it was replaced")
}

// openStoreFor parses arg as a root CID, then opens the store in dir
// (openStore): the start of every command on one root. The caller closes
// the store.
func openStoreFor(dir, arg string) (cid.Cid, *pebblestore.Store, error) {
	root, err := node.ParseCID(arg)
	if err != nil {
		return cid.Undef, nil, err
	}
	st, err := openStore(dir)
	return root, st, err
}

func openStore(dir string) (*pebblestore.Store, error) {
	if dir == "" {
		dir = defaultStoreDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating store: %w", err)
	}
	return pebblestore.Open(dir, pebblestore.Options{})
}
