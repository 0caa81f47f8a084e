package fuse_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/fuse"
	"github.com/hearthcdn/hearth/internal/dagtest"
	"github.com/hearthcdn/hearth/node"
)

// A directory listing "a" (a symlink out of the tree), then "b", then "a"
// again as a directory: the mount neither lists it nor resolves a name in
// it (EIO), whether it is the root or a subdirectory; its well-formed
// siblings still read.
func TestHostileDirectoryNotShown(t *testing.T) {
	needFUSE(t)
	bs := node.NewMemStore()
	f := dagtest.Raw([]byte("payload"))
	sub := dagtest.Dir(dagtest.Link("f", f))
	link := dagtest.Symlink("/tmp")
	b := dagtest.Raw([]byte("b"))
	hostile := dagtest.Dir(dagtest.Link("a", link), dagtest.Link("b", b), dagtest.Link("a", sub))
	root := dagtest.Dir(dagtest.Link("h", hostile), dagtest.Link("ok", sub))
	dagtest.Put(t, bs, f, sub, link, b, hostile, root)

	for _, tc := range []struct {
		root cid.Cid
		dir  string
	}{{hostile.Cid, ""}, {root.Cid, "h"}} {
		_, mnt := mount(t, fuse.Options{Getter: bs, Root: tc.root})
		dir := filepath.Join(mnt, tc.dir)
		if ents, err := os.ReadDir(dir); !errors.Is(err, syscall.EIO) {
			t.Fatalf("listing %q: %v %v, want EIO", tc.dir, ents, err)
		}
		for _, name := range []string{"a", "a/f", "b"} {
			if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, syscall.EIO) {
				t.Fatalf("stat %q/%s: %v, want EIO", tc.dir, name, err)
			}
		}
		if tc.dir != "" {
			if got, err := os.ReadFile(filepath.Join(mnt, "ok", "f")); err != nil || string(got) != "payload" {
				t.Fatalf("sibling: %q %v", got, err)
			}
		}
	}
}
