package fuse_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

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

// A file of ten distinct blocks whose levels link 174 times to one child
// (3.1e17 bytes claimed): the mount stats it and reads 4 KiB at its start,
// in its middle and at its end, reading a few blocks per read, not one per
// leaf the file claims.
func TestFileBombReads(t *testing.T) {
	needFUSE(t)
	d := dagtest.NewBuilder()
	bomb, _ := d.FileBomb()
	n, _, err := node.GetNode(context.Background(), d.Store, bomb)
	if err != nil {
		t.Fatal(err)
	}
	root := d.Dir([]node.Link{{Cid: bomb, Name: "bomb"}})
	// Each read walks at most ten blocks; the kernel may split a read or
	// read ahead, and the listing and lookups read a few more.
	cg := &dagtest.CountingGetter{G: d.Store, Budget: 1000}
	_, mnt := mount(t, fuse.Options{Getter: cg, Root: root})

	path := filepath.Join(mnt, "bomb")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(fi.Size()) != n.FileSize {
		t.Fatalf("size %d, want %d", fi.Size(), n.FileSize)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := bytes.Repeat([]byte("b"), 4096)
	for _, off := range []int64{fi.Size() - 4096, fi.Size() / 3, 0} {
		buf := make([]byte, 4096)
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatalf("reading at %d: %v (%d blocks read)", off, err, cg.Gets.Load())
		}
		if !bytes.Equal(buf, want) {
			t.Fatalf("at %d: wrong bytes", off)
		}
	}
	t.Logf("%d blocks read", cg.Gets.Load())
}

// stallingGetter answers the blocks of g it was told to, and holds every
// other request until its context ends, reporting it on entered.
type stallingGetter struct {
	g       node.Getter
	answer  map[string]bool
	entered chan struct{}
}

func (s *stallingGetter) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	if s.answer[c.KeyString()] {
		return s.g.Get(ctx, c)
	}
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// Unmount ends a read in flight: the reader gets an error at once instead
// of waiting out ReadTimeout while the mount stays busy.
func TestUnmountEndsReads(t *testing.T) {
	needFUSE(t)
	bs := node.NewMemStore()
	leaf := dagtest.Raw([]byte("never served"))
	root := dagtest.Dir(dagtest.Link("f", leaf))
	dagtest.Put(t, bs, leaf, root)
	g := &stallingGetter{g: bs, answer: map[string]bool{root.Cid.KeyString(): true}, entered: make(chan struct{}, 1)}
	fsys, mnt := mount(t, fuse.Options{Getter: g, Root: root.Cid, ReadTimeout: time.Minute})

	read := make(chan error, 1)
	go func() { // owned here: the test receives from read below
		_, err := os.ReadFile(filepath.Join(mnt, "f"))
		read <- err
	}()
	<-g.entered
	unmounted := make(chan struct{})
	go func() { // owned here: the test waits for it below
		defer close(unmounted)
		_ = fsys.Unmount() // busy until the reader closes: the cleanup's Unmount tries again
	}()
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("read of a stalled block succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read still runs 10s after Unmount started")
	}
	<-unmounted
}
