package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	cid "github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node"
)

func newGetCmd() *cobra.Command {
	var storeDir, out string
	cmd := &cobra.Command{
		Use:   "get [--store DIR] CID[/path] [-o OUT]",
		Short: "Write a file or tree from the store, verifying every block",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
	return cmd
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
		ents, err := node.ListDir(ctx, g, n)
		if err != nil {
			return err
		}
		for _, e := range ents {
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
