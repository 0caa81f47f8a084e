package fuse_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/fuse"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
)

func needFUSE(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE unavailable here (/dev/fuse: %v)", err)
	}
}

// remote is a block source standing in for the swarm: a real store read
// through the fetch path, counting what is fetched.
type remote struct {
	bs      *node.MemStore
	fetched atomic.Int64
	raw     atomic.Int64
	fail    atomic.Bool
	stall   chan struct{}
}

func (r *remote) FetchBlock(ctx context.Context, c cid.Cid) ([]byte, error) {
	if r.stall != nil {
		select {
		case <-r.stall:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if r.fail.Load() {
		return nil, errors.New("swarm unreachable")
	}
	r.fetched.Add(1)
	if c.Type() == node.CodecRaw {
		r.raw.Add(1)
	}
	return r.bs.Get(ctx, c)
}

func publish(t *testing.T, dir string) (*node.MemStore, cid.Cid) {
	t.Helper()
	bs := node.NewMemStore()
	root, err := importer.New(bs, importer.Options{}).ImportPath(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return bs, root
}

func writeTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for p, d := range files {
		fp := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fp, d, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mount(t *testing.T, opts fuse.Options) (*fuse.FS, string) {
	t.Helper()
	mnt := t.TempDir()
	f, err := fuse.Mount(mnt, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Unmount() })
	return f, mnt
}

func TestReadOnlyViewLazy(t *testing.T) {
	needFUSE(t)
	src := t.TempDir()
	big := make([]byte, 3*node.ChunkSize+123)
	for i := range big {
		big[i] = byte(i/7 + i/node.ChunkSize)
	}
	files := map[string][]byte{
		"index.html":        []byte("<h1>home</h1>"),
		"css/site.css":      []byte("body{}"),
		"media/big.bin":     big,
		"docs/deep/a/b.txt": []byte("deep"),
		".well-known/x":     []byte("dot"),
	}
	writeTree(t, src, files)
	rbs, root := publish(t, src)
	rem := &remote{bs: rbs}
	local := node.NewMemStore()
	_, mnt := mount(t, fuse.Options{Getter: &fuse.FetchingGetter{Store: local, Fetcher: rem}, Root: root})

	// Listing and stat read only interior blocks, never file contents.
	ents, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 5 {
		t.Fatalf("%d entries at the root", len(ents))
	}
	fi, err := os.Stat(filepath.Join(mnt, "media", "big.bin"))
	if err != nil || fi.Size() != int64(len(big)) || fi.Mode().Perm() != 0o444 {
		t.Fatalf("stat: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(mnt, "index.html")); err != nil || fi.Size() != 13 {
		t.Fatalf("stat of a raw-leaf file: %v %v", fi, err)
	}
	if n := rem.raw.Load(); n != 0 {
		t.Fatalf("listing fetched %d raw leaves", n)
	}

	// Reading fetches, verifies and keeps; the view equals what was published.
	for p, want := range files {
		got, err := os.ReadFile(filepath.Join(mnt, p))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s differs", p)
		}
	}
	if local.Len() != rbs.Len() {
		t.Fatalf("kept %d blocks, published %d", local.Len(), rbs.Len())
	}
	// A read in the middle of the big file.
	fh, err := os.Open(filepath.Join(mnt, "media", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if _, err := fh.ReadAt(buf, node.ChunkSize-500); err != nil || !bytes.Equal(buf, big[node.ChunkSize-500:node.ChunkSize+500]) {
		t.Fatalf("ReadAt across a chunk: %v", err)
	}
	fh.Close()

	// Read-only without a key.
	if err := os.WriteFile(filepath.Join(mnt, "new.txt"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.ENOSYS) {
		t.Fatalf("write on a read-only mount: %v", err)
	}
	if _, err := os.OpenFile(filepath.Join(mnt, "index.html"), os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("open for write: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("absent name: %v", err)
	}
}

func TestSetRootShowsNewTree(t *testing.T) {
	needFUSE(t)
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"a.txt": []byte("one"), "sub/b.txt": []byte("bee")})
	bs, root1 := publish(t, src)
	f, mnt := mount(t, fuse.Options{Getter: bs, Root: root1})
	if got, _ := os.ReadFile(filepath.Join(mnt, "a.txt")); string(got) != "one" {
		t.Fatalf("before: %q", got)
	}
	old, err := os.Open(filepath.Join(mnt, "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	writeTree(t, src, map[string][]byte{"a.txt": []byte("two!"), "c.txt": []byte("new")})
	root2, err := importer.New(bs, importer.Options{}).ImportPath(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	f.SetRoot(root2)
	if got, err := os.ReadFile(filepath.Join(mnt, "a.txt")); string(got) != "two!" {
		t.Fatalf("after SetRoot: %q %v", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "c.txt")); string(got) != "new" {
		t.Fatalf("new file: %q %v", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "sub", "b.txt")); string(got) != "bee" {
		t.Fatalf("unchanged file: %q %v", got, err)
	}
	// The file opened before keeps reading its version.
	buf := make([]byte, 10)
	n, _ := old.ReadAt(buf, 0)
	if string(buf[:n]) != "one" {
		t.Fatalf("open file now reads %q", buf[:n])
	}
}

// The swarm unreachable during a read: EIO after the deadline, never a hang.
func TestUnreachableSwarmIsEIO(t *testing.T) {
	needFUSE(t)
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"f.bin": bytes.Repeat([]byte("z"), 2*node.ChunkSize)})
	rbs, root := publish(t, src)
	rem := &remote{bs: rbs}
	local := node.NewMemStore()
	// The directory and file node are local; the leaves are not.
	rn, _ := node.Resolve(context.Background(), rbs, root, nil)
	d, _ := rbs.Get(context.Background(), root)
	_ = local.Put(context.Background(), root, d)
	fl, _ := node.Resolve(context.Background(), rbs, root, []string{"f.bin"})
	fd, _ := rbs.Get(context.Background(), fl.Cid)
	_ = local.Put(context.Background(), fl.Cid, fd)
	_ = rn
	rem.stall = make(chan struct{}) // never answers
	_, mnt := mount(t, fuse.Options{Getter: &fuse.FetchingGetter{Store: local, Fetcher: rem}, Root: root, ReadTimeout: 300 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := os.ReadFile(filepath.Join(mnt, "f.bin"))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("read with the swarm unreachable: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("read hung")
	}
}

func TestMountPointInUse(t *testing.T) {
	needFUSE(t)
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"a": []byte("a")})
	bs, root := publish(t, src)
	_, mnt := mount(t, fuse.Options{Getter: bs, Root: root})
	if _, err := fuse.Mount(mnt, fuse.Options{Getter: bs, Root: root}); !errors.Is(err, fuse.ErrMountPointInUse) {
		t.Fatalf("second mount on the same point: %v", err)
	}
	if _, err := fuse.Mount(filepath.Join(mnt, "a"), fuse.Options{Getter: bs, Root: root}); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("mount on a file: %v", err)
	}
	if _, err := fuse.Mount(filepath.Join(src, "missing"), fuse.Options{Getter: bs, Root: root}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("mount on a missing directory: %v", err)
	}
}
