package unpack_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/internal/dagtest"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/unpack"
)

// setup returns a store, an output path inside a fresh directory and a
// directory beside it that nothing may write into.
func setup(t *testing.T) (*node.MemStore, string, string) {
	t.Helper()
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	return node.NewMemStore(), filepath.Join(base, "out"), outside
}

func empty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("%s holds %v: a write escaped the output tree", dir, ents)
	}
}

func decode(t *testing.T, b node.Block) *node.Node {
	t.Helper()
	n, err := node.Decode(b.Cid, b.Data)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A directory listing "a" as a symlink out of the tree, then "b", then "a"
// again as a directory holding a file: the decoder refuses such a node,
// so it is handed to Write as a Node directly, to check that Write alone
// never writes through the symlink, with or without AllowSymlinksOutside,
// and in either order of the two "a".
func TestHostileDuplicateSymlinkThenDir(t *testing.T) {
	for _, allow := range []bool{false, true} {
		for _, symlinkFirst := range []bool{true, false} {
			bs, out, outside := setup(t)
			f := dagtest.Raw([]byte("payload"))
			sub := dagtest.Dir(dagtest.Link("f", f))
			link := dagtest.Symlink(outside)
			b := dagtest.Raw([]byte("b"))
			dagtest.Put(t, bs, f, sub, link, b)
			links := []node.Link{dagtest.Link("a", link), dagtest.Link("b", b), dagtest.Link("a", sub)}
			if !symlinkFirst {
				links[0], links[2] = links[2], links[0]
			}
			hostile := dagtest.Dir(links...)
			if _, err := node.Decode(hostile.Cid, hostile.Data); !errors.Is(err, node.ErrLinkOrder) {
				t.Fatalf("decoder accepted the hostile directory: %v", err)
			}
			n := &node.Node{Cid: hostile.Cid, Kind: node.KindDirectory, Links: links}
			err := unpack.Write(context.Background(), bs, n, out, unpack.Options{AllowSymlinksOutside: allow})
			if err == nil {
				t.Fatalf("allow=%v symlinkFirst=%v: Write accepted a name listed twice", allow, symlinkFirst)
			}
			t.Logf("allow=%v symlinkFirst=%v: %v", allow, symlinkFirst, err)
			if !allow && symlinkFirst && !errors.Is(err, unpack.ErrSymlinkOutside) {
				t.Fatalf("allow=false: %v, want ErrSymlinkOutside", err)
			}
			if (allow || !symlinkFirst) && !errors.Is(err, node.ErrBadNode) {
				t.Fatalf("allow=%v: %v, want ErrBadNode", allow, err)
			}
			empty(t, outside)
		}
	}
}

// Symlinks that are absolute or climb out of the tree are refused; with
// AllowSymlinksOutside they are written (last), and the files beside them
// still land inside the tree.
func TestSymlinksOutside(t *testing.T) {
	for _, target := range []string{"/tmp/outside", "../../x", "..", "sub/../../x"} {
		bs, out, outside := setup(t)
		f := dagtest.Raw([]byte("inside"))
		m := dagtest.Dir(dagtest.Link("f", f))
		l := dagtest.Symlink(target)
		root := dagtest.Dir(dagtest.Link("l", l), dagtest.Link("m", m))
		dagtest.Put(t, bs, f, m, l, root)
		err := unpack.Write(context.Background(), bs, decode(t, root), out, unpack.Options{})
		if !errors.Is(err, unpack.ErrSymlinkOutside) {
			t.Fatalf("%s: %v, want ErrSymlinkOutside", target, err)
		}
		if _, err := os.Lstat(filepath.Join(out, "l")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: the refused symlink exists (%v)", target, err)
		}
		out2 := out + "2"
		if err := unpack.Write(context.Background(), bs, decode(t, root), out2, unpack.Options{AllowSymlinksOutside: true}); err != nil {
			t.Fatalf("%s, allowed: %v", target, err)
		}
		if got, err := os.Readlink(filepath.Join(out2, "l")); err != nil || got != target {
			t.Fatalf("%s, allowed: link reads %q %v", target, got, err)
		}
		if b, err := os.ReadFile(filepath.Join(out2, "m", "f")); err != nil || string(b) != "inside" {
			t.Fatalf("m/f: %q %v", b, err)
		}
		empty(t, outside)
	}
}

// A target that stays inside when read as text can still climb out
// through another symlink of the tree: "s -> d/t/../.." with
// "d/t -> ../x" resolves above the tree. It is refused and removed.
func TestSymlinkEscapesThroughAnother(t *testing.T) {
	bs, out, outside := setup(t)
	x := dagtest.Dir()
	tl := dagtest.Symlink("../x")
	d := dagtest.Dir(dagtest.Link("t", tl))
	s := dagtest.Symlink("d/t/../..")
	root := dagtest.Dir(dagtest.Link("d", d), dagtest.Link("s", s), dagtest.Link("x", x))
	dagtest.Put(t, bs, x, tl, d, s, root)
	err := unpack.Write(context.Background(), bs, decode(t, root), out, unpack.Options{})
	if !errors.Is(err, unpack.ErrSymlinkOutside) {
		t.Fatalf("%v, want ErrSymlinkOutside", err)
	}
	if _, err := os.Lstat(filepath.Join(out, "s")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the escaping symlink was left in place (%v)", err)
	}
	empty(t, outside)
}

// Symlinks inside the tree, dangling ones included, are written as they are.
func TestSymlinksInside(t *testing.T) {
	bs, out, _ := setup(t)
	f := dagtest.Raw([]byte("hello"))
	up := dagtest.Symlink("../f")
	sub := dagtest.Dir(dagtest.Link("up", up))
	same := dagtest.Symlink("f")
	dangling := dagtest.Symlink("sub/missing")
	root := dagtest.Dir(dagtest.Link("dangling", dangling), dagtest.Link("f", f), dagtest.Link("same", same), dagtest.Link("sub", sub))
	dagtest.Put(t, bs, f, up, sub, same, dangling, root)
	if err := unpack.Write(context.Background(), bs, decode(t, root), out, unpack.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"same", "sub/up"} {
		if b, err := os.ReadFile(filepath.Join(out, p)); err != nil || string(b) != "hello" {
			t.Fatalf("%s: %q %v", p, b, err)
		}
	}
	if got, err := os.Readlink(filepath.Join(out, "dangling")); err != nil || got != "sub/missing" {
		t.Fatalf("dangling: %q %v", got, err)
	}
}

// An output directory that already holds a symlink out of the tree where
// the DAG has a directory: Write fails rather than write through it.
func TestExistingSymlinkInOutput(t *testing.T) {
	bs, out, outside := setup(t)
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(out, "a")); err != nil {
		t.Fatal(err)
	}
	f := dagtest.Raw([]byte("payload"))
	a := dagtest.Dir(dagtest.Link("f", f))
	root := dagtest.Dir(dagtest.Link("a", a))
	dagtest.Put(t, bs, f, a, root)
	if err := unpack.Write(context.Background(), bs, decode(t, root), out, unpack.Options{}); err == nil {
		t.Fatal("Write wrote into a directory through an existing symlink")
	}
	empty(t, outside)
}

// A file or symlink written alone: a file lands at the path; a symlink is
// its own whole tree, so it is refused unless allowed.
func TestWriteAlone(t *testing.T) {
	bs, out, _ := setup(t)
	f := dagtest.Raw([]byte("alone"))
	l := dagtest.Symlink("alone.txt")
	dagtest.Put(t, bs, f, l)
	if err := os.Mkdir(filepath.Dir(out), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	if err := unpack.Write(context.Background(), bs, decode(t, f), out, unpack.Options{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "alone" {
		t.Fatalf("%q %v", b, err)
	}
	link := out + ".link"
	if err := unpack.Write(context.Background(), bs, decode(t, l), link, unpack.Options{}); !errors.Is(err, unpack.ErrSymlinkOutside) {
		t.Fatalf("symlink alone: %v", err)
	}
	if err := unpack.Write(context.Background(), bs, decode(t, l), link, unpack.Options{AllowSymlinksOutside: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(link); err != nil || got != "alone.txt" {
		t.Fatalf("%q %v", got, err)
	}
}

// Write stops at ctx's end: a file of 64 MiB made of one repeated leaf,
// whose first leaf read cancels the context.
func TestWriteStopsOnCancel(t *testing.T) {
	bs, out, _ := setup(t)
	leaf := dagtest.Raw(make([]byte, 1<<10))
	l1 := dagtest.Repeat(leaf, 1<<10, 1<<10)
	l2 := dagtest.Repeat(l1, 1<<20, 64)
	root := dagtest.Dir(dagtest.Link("big", l2))
	dagtest.Put(t, bs, leaf, l1, l2, root)
	ctx, cancel := context.WithCancel(context.Background())
	cancelling := node.GetterFunc(func(c context.Context, k cid.Cid) ([]byte, error) {
		if k.Equals(leaf.Cid) {
			cancel()
		}
		return bs.Get(c, k)
	})
	err := unpack.Write(ctx, cancelling, decode(t, root), out, unpack.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v, want context.Canceled", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Fatalf("a cancelled write left %v", ents)
	}
}
