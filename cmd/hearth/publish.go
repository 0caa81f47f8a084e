package main

import (
	"crypto/ed25519"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
	"github.com/hearthcdn/hearth/node/origin"
)

func newPublishCmd() *cobra.Command {
	var storeDir, keyFile string
	var keep int
	var keepFor time.Duration
	cmd := &cobra.Command{
		Use:   "publish [--store DIR] [--key FILE] SRC",
		Short: "Import and pin a file or directory; print its root CID; with --key, sign the next root record",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src := args[0]
			if _, err := os.Stat(src); err != nil {
				return fmt.Errorf("source: %w", err)
			}
			var key ed25519.PrivateKey
			if keyFile != "" {
				k, err := node.ReadKeyFile(keyFile)
				if err != nil {
					return err
				}
				key = k
			}
			st, err := openStore(storeDir)
			if err != nil {
				return err
			}
			defer st.Close()

			stderr := cmd.ErrOrStderr()
			var opts importer.Options
			if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				bar := progressbar.DefaultBytes(treeSize(src), "publishing")
				var last int64
				opts.Progress = func(_ int, bytes int64) {
					_ = bar.Add64(bytes - last)
					last = bytes
				}
				defer bar.Finish()
			}
			start := time.Now()
			im := importer.New(st, opts)
			root, err := im.ImportPath(cmd.Context(), src)
			if err != nil {
				return err
			}
			s := im.Stats()
			fmt.Fprintf(stderr, "imported %d files, %d directories, %d bytes in %s\n", s.Files, s.Dirs, s.Bytes, time.Since(start).Round(time.Millisecond))
			if key != nil {
				rec, err := node.NewRecordLog(st).SignNext(key, root, time.Now())
				if err != nil {
					return err
				}
				fmt.Fprintf(stderr, "signed root record seq %d for site %s\n", rec.Seq, rec.Site)
				// Pinned as the site's root; roots past the retention
				// (`hearth origin --keep`, --keep-for) are collected.
				rs, err := origin.Retain(cmd.Context(), st, rec, origin.RetainOptions{Keep: keep, KeepFor: keepFor, Full: true})
				if err != nil {
					return err
				}
				if rs.Deleted > 0 {
					fmt.Fprintf(stderr, "unpinned seq %v; deleted %d blocks no pin keeps\n", rs.Unpinned, rs.Deleted)
				}
			} else {
				if _, err := node.PinWhole(cmd.Context(), st, root); err != nil {
					return err
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), root)
			return nil
		},
	}
	addStoreFlag(cmd, &storeDir)
	cmd.Flags().StringVar(&keyFile, "key", "", "site key file; sign and store the next root record (else the root is pinned by CID)")
	addRetentionFlags(cmd, &keep, &keepFor)
	return cmd
}

// treeSize sums the sizes of regular files under src, following symlinks;
// it is only a progress-bar estimate, so errors count as zero.
func treeSize(src string) int64 {
	var n int64
	_ = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
