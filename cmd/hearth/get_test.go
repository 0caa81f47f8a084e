package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthcdn/hearth/internal/dagtest"
	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/pebblestore"
	"github.com/hearthcdn/hearth/node/unpack"
)

// storeBlocks writes blocks into a new store at dir/store and returns its path.
func storeBlocks(t *testing.T, dir string, blocks ...node.Block) string {
	t.Helper()
	path := filepath.Join(dir, "store")
	st, err := pebblestore.Open(path, pebblestore.Options{})
	must(t, err)
	dagtest.Put(t, st, blocks...)
	must(t, st.Close())
	return path
}

// carOf writes blocks as a CARv1 with root, to dir/name.
func carOf(t *testing.T, dir, name string, root node.Block, blocks ...node.Block) string {
	t.Helper()
	var buf bytes.Buffer
	cw, err := node.NewCARWriter(&buf, root.Cid)
	must(t, err)
	for _, b := range append([]node.Block{root}, blocks...) {
		must(t, cw.Put(context.Background(), b))
	}
	path := filepath.Join(dir, name)
	must(t, os.WriteFile(path, buf.Bytes(), 0o644))
	return path
}

func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	if len(ents) != 0 {
		t.Fatalf("%s holds %v: a write escaped the output directory", dir, ents)
	}
}

// A directory listing "a" (a symlink to a directory outside), then "b",
// then "a" again as a directory holding a file: `get -o` refuses it
// (ErrLinkOrder) and writes nothing outside, with or without
// --allow-symlinks-outside; `car import` of it stores no pin.
func TestGetHostileDuplicateName(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	must(t, os.Mkdir(outside, 0o755))
	f := dagtest.Raw([]byte("payload"))
	sub := dagtest.Dir(dagtest.Link("f", f))
	link := dagtest.Symlink(outside)
	b := dagtest.Raw([]byte("b"))
	hostile := dagtest.Dir(dagtest.Link("a", link), dagtest.Link("b", b), dagtest.Link("a", sub))
	store := storeBlocks(t, dir, f, sub, link, b, hostile)
	for _, extra := range [][]string{nil, {"--allow-symlinks-outside"}} {
		args := append([]string{"get", "--store", store, hostile.Cid.String(), "-o", filepath.Join(dir, "out")}, extra...)
		if _, _, err := run(t, args...); !errors.Is(err, node.ErrLinkOrder) {
			t.Fatalf("%v: %v, want ErrLinkOrder", extra, err)
		}
		emptyDir(t, outside)
	}
	for _, p := range []string{"a/f", "b"} {
		if _, _, err := run(t, "get", "--store", store, hostile.Cid.String()+"/"+p); !errors.Is(err, node.ErrLinkOrder) {
			t.Fatalf("get %s: %v, want ErrLinkOrder", p, err)
		}
	}

	// car import refuses the hostile CAR, parents first or children first
	// after 10 MiB of other blocks (stored before the refusal), and leaves
	// the store's blocks as they were.
	store2 := filepath.Join(dir, "store2")
	good := dagtest.Dir(dagtest.Link("f", f))
	if _, _, err := run(t, "car", "import", "--store", store2, carOf(t, dir, "good.car", good, f)); err != nil {
		t.Fatal(err)
	}
	before := storeLen(t, store2)
	var filler []node.Block
	for i := range 40 {
		filler = append(filler, dagtest.Raw(bytes.Repeat([]byte{byte(i)}, 256<<10)))
	}
	for _, car := range []string{
		carOf(t, dir, "hostile.car", hostile, f, sub, link, b),
		carOf(t, dir, "hostile-last.car", filler[0], append(filler[1:], f, sub, link, b, hostile)...),
	} {
		if _, _, err := run(t, "car", "import", "--store", store2, car); !errors.Is(err, node.ErrLinkOrder) {
			t.Fatalf("car import %s: %v, want ErrLinkOrder", filepath.Base(car), err)
		}
		if n := storeLen(t, store2); n != before {
			t.Fatalf("car import %s: the store holds %d blocks, %d before", filepath.Base(car), n, before)
		}
	}
	out, _, err := run(t, "pin", "ls", "--store", store2)
	must(t, err)
	if strings.Contains(out, hostile.Cid.String()) {
		t.Fatalf("the hostile root was pinned:\n%s", out)
	}
}

// storeLen counts the blocks of the store at path.
func storeLen(t *testing.T, path string) int {
	t.Helper()
	st, err := pebblestore.Open(path, pebblestore.Options{})
	must(t, err)
	defer st.Close()
	n := 0
	for _, err := range st.AllKeys(context.Background()) {
		must(t, err)
		n++
	}
	return n
}

// A well-ordered tree with a symlink out of it ("l -> OUTSIDE") beside a
// directory "m": `get -o` refuses the link unless --allow-symlinks-outside,
// and either way every file lands inside the output directory.
func TestGetSymlinkOutside(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	must(t, os.Mkdir(outside, 0o755))
	f := dagtest.Raw([]byte("inside"))
	m := dagtest.Dir(dagtest.Link("f", f))
	for _, target := range []string{outside, "../../x"} {
		l := dagtest.Symlink(target)
		root := dagtest.Dir(dagtest.Link("l", l), dagtest.Link("m", m))
		store := storeBlocks(t, t.TempDir(), f, m, l, root)
		out := filepath.Join(t.TempDir(), "out")
		if _, _, err := run(t, "get", "--store", store, root.Cid.String(), "-o", out); !errors.Is(err, unpack.ErrSymlinkOutside) {
			t.Fatalf("%s: %v, want ErrSymlinkOutside", target, err)
		}
		if _, err := os.Lstat(filepath.Join(out, "l")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: the refused link was written (%v)", target, err)
		}
		if _, _, err := run(t, "get", "--store", store, root.Cid.String(), "-o", out, "--allow-symlinks-outside"); err != nil {
			t.Fatalf("%s, allowed: %v", target, err)
		}
		if got, err := os.Readlink(filepath.Join(out, "l")); err != nil || got != target {
			t.Fatalf("%s, allowed: %q %v", target, got, err)
		}
		if got, err := os.ReadFile(filepath.Join(out, "m", "f")); err != nil || string(got) != "inside" {
			t.Fatalf("m/f: %q %v", got, err)
		}
		emptyDir(t, outside)
	}
}
