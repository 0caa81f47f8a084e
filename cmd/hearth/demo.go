package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
)

//go:embed all:demosite
var demoSite embed.FS

func newDemoCmd() *cobra.Command {
	var siteDir, workDir string
	cmd := &cobra.Command{
		Use:   "demo [--site DIR] [--dir WORKDIR]",
		Short: "Publish the embedded demo site (or --site DIR) and read it back, verified",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if workDir == "" {
				d, err := os.MkdirTemp("", "hearth-demo-")
				if err != nil {
					return err
				}
				workDir = d
			}
			if siteDir == "" {
				siteDir = filepath.Join(workDir, "site")
				if err := extractDemoSite(siteDir); err != nil {
					return err
				}
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), siteDir, workDir)
		},
	}
	cmd.Flags().StringVar(&siteDir, "site", "", "directory to publish (default: the embedded demo site)")
	cmd.Flags().StringVar(&workDir, "dir", "", "working directory for keys and stores (default: a new temporary directory)")
	return cmd
}

// extractDemoSite writes the embedded demo site to dir.
func extractDemoSite(dir string) error {
	sub, err := fs.Sub(demoSite, "demosite")
	if err != nil {
		return err
	}
	return os.CopyFS(dir, sub)
}

func runDemo(ctx context.Context, out io.Writer, siteDir, workDir string) error {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey))
	st, err := openStore(filepath.Join(workDir, "origin-store"))
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	im := importer.New(st, importer.Options{})
	root, err := im.ImportPath(ctx, siteDir)
	if err != nil {
		return err
	}
	rec, err := node.NewRecordLog(st).SignNext(key, root, time.Now())
	if err != nil {
		return err
	}
	s := im.Stats()
	fmt.Fprintf(out, "published %s: %d files, %d bytes in %s\n", siteDir, s.Files, s.Bytes, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(out, "site %s\nroot %s (record seq %d)\n", site, root, rec.Seq)

	// Read every file back through a verifying store and compare.
	g := node.NewVerifyingStore(st)
	files := 0
	err = filepath.WalkDir(siteDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(siteDir, p)
		segs, err := node.SplitPath(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		n, err := node.Resolve(ctx, g, root, segs)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		var buf bytes.Buffer
		if err := node.WriteFile(ctx, g, n, 0, n.FileSize, &buf); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(buf.Bytes(), want) {
			return fmt.Errorf("%s: read back differs", rel)
		}
		files++
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "read back %d files, every block verified\n", files)
	return nil
}
