package fuse_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/fuse"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
)

type commits struct {
	mu    sync.Mutex
	roots []cid.Cid
	ch    chan cid.Cid
}

func newCommits() *commits { return &commits{ch: make(chan cid.Cid, 100)} }

func (c *commits) commit(_ context.Context, root cid.Cid) error {
	c.mu.Lock()
	c.roots = append(c.roots, root)
	c.mu.Unlock()
	c.ch <- root
	return nil
}

func (c *commits) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.roots)
}

// withMeta gives bs an empty metadata store, as a mount's Store needs,
// unless it has one.
func withMeta(bs node.Blockstore) node.GCStore {
	if gs, ok := bs.(node.GCStore); ok {
		return gs
	}
	return struct {
		node.Blockstore
		*node.MemMeta
	}{bs, node.NewMemMeta()}
}

func writableMount(t *testing.T, bs node.Blockstore, root cid.Cid, quiet time.Duration) (*fuse.FS, string, *commits) {
	t.Helper()
	cm := newCommits()
	mnt := t.TempDir()
	f, err := fuse.Mount(mnt, fuse.Options{
		Getter: bs, Root: root, Writable: true, Store: withMeta(bs),
		ScratchDir: t.TempDir(), QuietPeriod: quiet, Commit: cm.commit,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Unmount() })
	return f, mnt, cm
}

func fsync(t *testing.T, p string) {
	t.Helper()
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := fh.Sync(); err != nil {
		t.Fatal(err)
	}
}

// importDir returns the CID a fresh import of dir gives.
func importDir(t *testing.T, dir string) cid.Cid {
	t.Helper()
	c, err := importer.New(node.NewMemStore(), importer.Options{}).ImportPath(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Edits through the mount give exactly the root a fresh import of the same
// tree gives: only changed paths are rebuilt, and nothing else differs.
func TestWritableEditsBuildTheRightRoot(t *testing.T) {
	needFUSE(t)
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{
		"index.html":    []byte("<h1>v1</h1>"),
		"css/site.css":  []byte("body{}"),
		"docs/old.html": []byte("old"),
		"big.bin":       bytes.Repeat([]byte("0123456789"), 60000),
	})
	bs := node.NewMemStore()
	root, err := importer.New(bs, importer.Options{}).ImportPath(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	f, mnt, cm := writableMount(t, bs, root, time.Hour)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The same edits on the mount and on a copy on disk.
	for _, base := range []string{mnt, src} {
		must(os.WriteFile(filepath.Join(base, "index.html"), []byte("<h1>v2</h1>"), 0o644))
		must(os.MkdirAll(filepath.Join(base, "blog", "2026"), 0o755))
		must(os.WriteFile(filepath.Join(base, "blog", "2026", "post.html"), []byte("post"), 0o644))
		must(os.Rename(filepath.Join(base, "docs", "old.html"), filepath.Join(base, "docs", "new.html")))
		must(os.Remove(filepath.Join(base, "css", "site.css")))
		must(os.Remove(filepath.Join(base, "css")))
		must(os.Truncate(filepath.Join(base, "big.bin"), 300000))
		fh, err := os.OpenFile(filepath.Join(base, "big.bin"), os.O_WRONLY, 0)
		must(err)
		_, err = fh.WriteAt([]byte("PATCH"), 1000)
		must(err)
		must(fh.Close())
		must(os.Chmod(filepath.Join(base, "index.html"), 0o600))
	}
	if got, _ := os.ReadFile(filepath.Join(mnt, "index.html")); string(got) != "<h1>v2</h1>" {
		t.Fatalf("read back before build: %q", got)
	}
	fsync(t, filepath.Join(mnt, "index.html"))
	if cm.count() != 1 {
		t.Fatalf("%d commits after one fsync", cm.count())
	}
	want := importDir(t, src)
	if got := f.Root(); !got.Equals(want) || !cm.roots[0].Equals(want) {
		t.Fatalf("built root %s, fresh import %s", got, want)
	}
	// The new tree reads back through the mount, after the build too.
	for _, p := range []string{"index.html", "blog/2026/post.html", "docs/new.html", "big.bin"} {
		a, err1 := os.ReadFile(filepath.Join(mnt, p))
		b, err2 := os.ReadFile(filepath.Join(src, p))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s: %v %v", p, err1, err2)
		}
	}
	if fi, err := os.Stat(filepath.Join(mnt, "index.html")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("chmod: %v %v", fi, err)
	}
	// Errors a writer can hit.
	if err := os.WriteFile(filepath.Join(mnt, strings.Repeat("n", 256)), nil, 0o644); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Fatalf("long name: %v", err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "bad\xffname"), nil, 0o644); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("non-UTF-8 name: %v", err)
	}
	if err := os.Remove(filepath.Join(mnt, "blog")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("rmdir of a non-empty dir: %v", err)
	}
	// A build with nothing pending commits nothing.
	fsync(t, filepath.Join(mnt, "index.html"))
	if cm.count() != 1 {
		t.Fatalf("%d commits", cm.count())
	}
}

// Changes are built after the quiet period, once for a burst of writes; the
// superseded root's blocks that nothing references are collected.
func TestQuietPeriodHeavyWritesAndGC(t *testing.T) {
	needFUSE(t)
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"keep.txt": []byte("keep")})
	bs := node.NewMemStore()
	root, _ := importer.New(bs, importer.Options{}).ImportPath(context.Background(), src)
	_, mnt, cm := writableMount(t, bs, root, 300*time.Millisecond)

	// Many files, and one file written 4 KiB at a time.
	for i := 0; i < 500; i++ {
		if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("f%03d.txt", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fh, err := os.Create(filepath.Join(mnt, "stream.bin"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("s"), 4096)
	for i := 0; i < 1024; i++ { // 4 MiB
		chunk[0] = byte(i)
		if _, err := fh.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	fh.Close()
	var first cid.Cid
	select {
	case first = <-cm.ch:
	case <-time.After(30 * time.Second):
		t.Fatal("no build after the quiet period")
	}
	if n := cm.count(); n > 2 {
		t.Fatalf("%d builds for one burst of writes", n)
	}
	ents, _ := os.ReadDir(mnt)
	if len(ents) != 502 {
		t.Fatalf("%d entries", len(ents))
	}
	// Rewrite the big file: the old version's leaves become garbage.
	if err := os.WriteFile(filepath.Join(mnt, "stream.bin"), []byte("small now"), 0o644); err != nil {
		t.Fatal(err)
	}
	fsync(t, filepath.Join(mnt, "stream.bin"))
	var last cid.Cid
	cm.mu.Lock()
	last = cm.roots[len(cm.roots)-1]
	cm.mu.Unlock()
	if last.Equals(first) {
		t.Fatal("no new root after rewrite")
	}
	reach := reachable(t, bs, last)
	if bs.Len() != reach {
		t.Fatalf("store holds %d blocks, the newest root reaches %d: garbage left", bs.Len(), reach)
	}
}

// TestGCKeepsOtherSitesPins: in a store with metadata, the blocks of a
// replaced root that another site's pinned root also holds (content
// addressing shares identical files) survive the mount's collection.
func TestGCKeepsOtherSitesPins(t *testing.T) {
	needFUSE(t)
	ctx := context.Background()
	gs := struct {
		*node.MemStore
		*node.MemMeta
	}{node.NewMemStore(), node.NewMemMeta()}
	shared := bytes.Repeat([]byte("shared by two sites "), 30000) // 600 kB: several leaves
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"keep.txt": []byte("keep")})
	root, err := importer.New(gs, importer.Options{}).ImportPath(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	// Another site's pinned root holds the same file.
	other := t.TempDir()
	writeTree(t, other, map[string][]byte{"lib/shared.bin": shared})
	otherRoot, err := importer.New(gs, importer.Options{}).ImportPath(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	otherSite := node.SiteIDOf(make([]byte, 32))
	if err := node.PutPin(gs, otherSite, node.Pin{Seq: 1, Root: otherRoot}); err != nil {
		t.Fatal(err)
	}
	otherBlocks := reachable(t, gs, otherRoot)

	_, mnt, cm := writableMount(t, gs, root, 50*time.Millisecond)
	if err := os.WriteFile(filepath.Join(mnt, "shared.bin"), shared, 0o644); err != nil {
		t.Fatal(err)
	}
	fsync(t, filepath.Join(mnt, "shared.bin"))
	if err := os.WriteFile(filepath.Join(mnt, "shared.bin"), []byte("mine now"), 0o644); err != nil {
		t.Fatal(err)
	}
	fsync(t, filepath.Join(mnt, "shared.bin"))
	if n := cm.count(); n < 2 {
		t.Fatalf("%d commits, want the file's two versions", n)
	}
	if n := reachable(t, gs, otherRoot); n != otherBlocks {
		t.Fatalf("the other site's pinned root reaches %d blocks, had %d", n, otherBlocks)
	}
}

func reachable(t *testing.T, g node.Getter, root cid.Cid) int {
	n := 0
	_, err := node.Traverse(context.Background(), g, node.Request{Root: root, Scope: node.ScopeAll}, func(node.Block) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConcurrentWriters(t *testing.T) {
	needFUSE(t)
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"a": []byte("a")})
	bs := node.NewMemStore()
	root, _ := importer.New(bs, importer.Options{}).ImportPath(context.Background(), src)
	f, mnt, _ := writableMount(t, bs, root, time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := filepath.Join(mnt, fmt.Sprintf("w%d", w))
			if err := os.Mkdir(dir, 0o755); err != nil {
				errs <- err
				return
			}
			for i := 0; i < 25; i++ {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), []byte(fmt.Sprintf("%d-%d", w, i)), 0o644); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fsync(t, mnt)
	for w := 0; w < 8; w++ {
		for i := 0; i < 25; i++ {
			n, err := node.Resolve(context.Background(), bs, f.Root(), []string{fmt.Sprintf("w%d", w), fmt.Sprint(i)})
			if err != nil || string(n.Data) != fmt.Sprintf("%d-%d", w, i) {
				t.Fatalf("w%d/%d in the new root: %v", w, i, err)
			}
		}
	}
}

// A full disk under the scratch files: the writer gets ENOSPC, and the
// published root and everything built before stay intact.
func TestWriteFullDisk(t *testing.T) {
	needFUSE(t)
	scratch := t.TempDir()
	if err := syscall.Mount("tmpfs", scratch, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(scratch, syscall.MNT_DETACH) })
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"keep.txt": []byte("keep")})
	bs := node.NewMemStore()
	root, _ := importer.New(bs, importer.Options{}).ImportPath(context.Background(), src)
	cm := newCommits()
	mnt := t.TempDir()
	f, err := fuse.Mount(mnt, fuse.Options{Getter: bs, Root: root, Writable: true, Store: withMeta(bs),
		ScratchDir: scratch, QuietPeriod: time.Hour, Commit: cm.commit})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Unmount()
	if err := os.WriteFile(filepath.Join(mnt, "small.txt"), []byte("fits"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = os.WriteFile(filepath.Join(mnt, "big.bin"), bytes.Repeat([]byte("x"), 4<<20), 0o644)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing past a full disk: %v, want ENOSPC", err)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "keep.txt")); err != nil || string(got) != "keep" {
		t.Fatalf("published file after ENOSPC: %q %v", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "small.txt")); err != nil || string(got) != "fits" {
		t.Fatalf("file written before the disk filled: %q %v", got, err)
	}
	if n, err := node.Resolve(context.Background(), bs, root, []string{"keep.txt"}); err != nil || string(n.Data) != "keep" {
		t.Fatalf("published root damaged: %v", err)
	}
}
