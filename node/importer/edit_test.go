package importer_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
)

// Editing a directory entry by entry gives the CID a fresh import of the
// resulting tree gives, for basic and for HAMT-sharded directories.
func TestEditMatchesFreshImport(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{3, 4000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			src := t.TempDir()
			name := func(i int) string { return fmt.Sprintf("e-%05d-%s", i, strings.Repeat("y", 48)) }
			for i := 0; i < n; i++ {
				write(t, filepath.Join(src, name(i)), []byte(name(i)))
			}
			bs := node.NewMemStore()
			im := importer.New(bs, importer.Options{})
			root, err := im.ImportPath(ctx, src)
			if err != nil {
				t.Fatal(err)
			}
			// Replace one entry, remove another, add a third.
			newFile, err := im.ImportReader(ctx, bytes.NewReader([]byte("changed")))
			if err != nil {
				t.Fatal(err)
			}
			ed, err := im.EditDir(ctx, root)
			if err != nil {
				t.Fatal(err)
			}
			if err := ed.Set(ctx, name(1), newFile); err != nil {
				t.Fatal(err)
			}
			if err := ed.Remove(ctx, name(2)); err != nil {
				t.Fatal(err)
			}
			if err := ed.Remove(ctx, "never-there"); err != nil {
				t.Fatal(err)
			}
			if err := ed.Set(ctx, "added", newFile); err != nil {
				t.Fatal(err)
			}
			edited, err := ed.Finish(ctx)
			if err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(src, name(1)), []byte("changed"))
			write(t, filepath.Join(src, "added"), []byte("changed"))
			if err := os.Remove(filepath.Join(src, name(2))); err != nil {
				t.Fatal(err)
			}
			fresh, err := importer.New(node.NewMemStore(), importer.Options{}).ImportPath(ctx, src)
			if err != nil {
				t.Fatal(err)
			}
			if !edited.Equals(fresh) {
				t.Fatalf("edited root %s, fresh import %s", edited, fresh)
			}
			compareTree(t, bs, edited, src)
		})
	}
}
