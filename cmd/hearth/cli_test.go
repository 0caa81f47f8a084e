package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/pebblestore"
)

// run executes the CLI in-process and returns stdout, stderr and the error.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// sameTree requires dir b to hold exactly the files of a, following a's symlinks.
func sameTree(t *testing.T, a, b string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		fa, err := os.Stat(p)
		if err != nil {
			return err
		}
		fb, err := os.Stat(filepath.Join(b, rel))
		if err != nil {
			t.Errorf("%s missing: %v", rel, err)
			return nil
		}
		if fa.IsDir() != fb.IsDir() {
			t.Errorf("%s: kind differs", rel)
			return nil
		}
		if fa.IsDir() {
			if d.Type()&fs.ModeSymlink != 0 {
				n += sameTree(t, p, filepath.Join(b, rel))
				return nil
			}
			ea, _ := os.ReadDir(p)
			eb, _ := os.ReadDir(filepath.Join(b, rel))
			if len(ea) != len(eb) {
				t.Errorf("%s: %d entries, want %d", rel, len(eb), len(ea))
			}
			return nil
		}
		da, _ := os.ReadFile(p)
		db, _ := os.ReadFile(filepath.Join(b, rel))
		if !bytes.Equal(da, db) {
			t.Errorf("%s differs", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKeygenPublishGetVerify(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	key := filepath.Join(dir, "site.key")
	out, _, err := run(t, "keygen", "--out", key)
	if err != nil {
		t.Fatal(err)
	}
	site, err := node.ParseSiteID(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("keygen printed %q: %v", out, err)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	if _, _, err := run(t, "keygen", "--out", key); err == nil {
		t.Fatal("keygen overwrote an existing key")
	}

	src := filepath.Join(dir, "site")
	must(t, os.MkdirAll(filepath.Join(src, "css"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "index.html"), []byte("<h1>home</h1>"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "css", "site.css"), bytes.Repeat([]byte("body{}"), 100000), 0o644))

	out, errOut, err := run(t, "publish", "--store", store, "--key", key, src)
	if err != nil {
		t.Fatal(err)
	}
	root, err := node.ParseCID(lastLine(out))
	if err != nil {
		t.Fatalf("publish's last line %q: %v", lastLine(out), err)
	}
	if !strings.Contains(errOut, "seq 1") {
		t.Fatalf("stderr %q", errOut)
	}
	// Publishing again signs seq 2 over the same root.
	if _, errOut, err = run(t, "publish", "--store", store, "--key", key, src); err != nil || !strings.Contains(errOut, "seq 2") {
		t.Fatalf("republish: %v %q", err, errOut)
	}
	st, err := pebblestore.Open(store, pebblestore.Options{})
	must(t, err)
	rec, err := node.NewRecordLog(st).Latest(site)
	must(t, st.Close())
	if err != nil || rec.Seq != 2 || !rec.Root.Equals(root) {
		t.Fatalf("latest record %+v %v", rec, err)
	}

	dst := filepath.Join(dir, "out")
	if _, _, err := run(t, "get", "--store", store, root.String(), "-o", dst); err != nil {
		t.Fatal(err)
	}
	if n := sameTree(t, src, dst); n != 2 {
		t.Fatalf("compared %d files", n)
	}
	out, _, err = run(t, "get", "--store", store, root.String()+"/index.html")
	if err != nil || out != "<h1>home</h1>" {
		t.Fatalf("get file to stdout: %q %v", out, err)
	}
	out, _, err = run(t, "verify", "--store", store, root.String())
	if err != nil || !strings.Contains(out, "0 missing, 0 corrupt") {
		t.Fatalf("verify: %q %v", out, err)
	}

	// CAR export, then import into a fresh store, then get again.
	car := filepath.Join(dir, "site.car")
	if _, _, err := run(t, "car", "export", "--store", store, root.String(), car); err != nil {
		t.Fatal(err)
	}
	store2 := filepath.Join(dir, "store2")
	out, _, err = run(t, "car", "import", "--store", store2, car)
	if err != nil || strings.TrimSpace(out) != root.String() {
		t.Fatalf("car import: %q %v", out, err)
	}
	dst2 := filepath.Join(dir, "out2")
	if _, _, err := run(t, "get", "--store", store2, root.String(), "-o", dst2); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, dst2)

	// A truncated CAR fails clearly and keeps what was stored.
	data, _ := os.ReadFile(car)
	must(t, os.WriteFile(car+".cut", data[:len(data)/2], 0o644))
	if _, _, err := run(t, "car", "import", "--store", store2, car+".cut"); err == nil || !strings.Contains(err.Error(), "importing") {
		t.Fatalf("truncated CAR: %v", err)
	}
	if _, _, err := run(t, "verify", "--store", store2, root.String()); err != nil {
		t.Fatalf("store damaged by a bad import: %v", err)
	}
}

func TestCorruptBlockDetected(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	src := filepath.Join(dir, "f")
	must(t, os.WriteFile(src, bytes.Repeat([]byte("x"), 600_000), 0o644))
	out, _, err := run(t, "publish", "--store", store, src)
	must(t, err)
	root, _ := node.ParseCID(lastLine(out))
	// Overwrite one leaf with other bytes under the same key.
	st, err := pebblestore.Open(store, pebblestore.Options{})
	must(t, err)
	n, err := node.Resolve(context.Background(), st, root, nil)
	must(t, err)
	must(t, st.Put(context.Background(), n.Links[1].Cid, []byte("not the block")))
	must(t, st.Close())

	out, _, err = run(t, "verify", "--store", store, root.String())
	if !errors.Is(err, errVerifyFailed) || !strings.Contains(out, "corrupt "+n.Links[1].Cid.String()) {
		t.Fatalf("verify: %q %v", out, err)
	}
	if _, _, err := run(t, "get", "--store", store, root.String(), "-o", filepath.Join(dir, "o")); !errors.Is(err, node.ErrCorrupt) {
		t.Fatalf("get of a corrupt file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "o")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("get left a partial file")
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	must(t, err)
	defer l.Close()
	other := filepath.Join(dir, "other.key")
	_, _, err = run(t, "keygen", "--out", other)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "bad.key"), []byte("not a key"), 0o600))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"publish", "--store", store, filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"publish", "--store", store, sock}, "not a regular file"},
		{[]string{"publish", "--store", store, "--key", filepath.Join(dir, "bad.key"), dir}, "ed25519"},
		{[]string{"get", "--store", store, "bafy-not-a-cid"}, "parsing CID"},
		{[]string{"get", "--store", store, node.Sum(node.CodecRaw, []byte("absent")).String()}, "not found"},
		{[]string{"verify", "--store", store, "Qm123"}, "parsing CID"},
		{[]string{"car", "import", "--store", store, filepath.Join(dir, "missing.car")}, "no such file"},
	} {
		_, _, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line containing %q", tc.args, err, tc.want)
		}
	}
}

// The Python documentation as Debian ships it (python3-doc), with symlinks
// that point out of the tree, survives publish then get byte for byte.
func TestPythonDocsRoundTrip(t *testing.T) {
	const src = "/usr/share/doc/python3.11/html"
	if _, err := os.Stat(src); err != nil {
		t.Skipf("python3-doc not installed: %v", err)
	}
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	out, _, err := run(t, "publish", "--store", store, src)
	if err != nil {
		t.Fatal(err)
	}
	root := lastLine(out)
	dst := filepath.Join(dir, "out")
	if _, _, err := run(t, "get", "--store", store, root, "-o", dst); err != nil {
		t.Fatal(err)
	}
	if n := sameTree(t, src, dst); n < 1000 {
		t.Fatalf("only %d files compared", n)
	}
	if out, _, err := run(t, "verify", "--store", store, root); err != nil {
		t.Fatalf("verify: %v %s", err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// publishPage writes body as page.html in the directory src, publishes it
// into store with args, and returns the root CID.
func publishPage(t *testing.T, store, src, body string, args ...string) string {
	t.Helper()
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "page.html"), []byte(body), 0o644))
	out, errOut, err := run(t, append(append([]string{"publish", "--store", store}, args...), src)...)
	if err != nil {
		t.Fatalf("publish %s: %v %s", src, err, errOut)
	}
	return lastLine(out)
}

// getPage reads root/page.html from store (to a file beside it).
func getPage(t *testing.T, store, root string) error {
	_, _, err := run(t, "get", "--store", store, root+"/page.html", "-o", filepath.Join(filepath.Dir(store), "got"))
	return err
}

// TestPublishRetention: `publish --key` pins each root and, past --keep
// and --keep-for, unpins old ones and deletes their blocks; a root
// published without a key, or imported from a CAR, is pinned by CID and
// survives those collections.
func TestPublishRetention(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	key := filepath.Join(dir, "site.key")
	if _, _, err := run(t, "keygen", "--out", key); err != nil {
		t.Fatal(err)
	}
	publish := func(store, name, body string, args ...string) string {
		return publishPage(t, store, filepath.Join(dir, name), body, args...)
	}
	get := func(root string) error { return getPage(t, store, root) }
	loose := publish(store, "loose", "pinned by CID")
	// A root published into another store, carried over in a CAR.
	store2 := filepath.Join(dir, "store2")
	other := publish(store2, "other", "exported, then imported")
	car := filepath.Join(dir, "x.car")
	if _, _, err := run(t, "car", "export", "--store", store2, other, car); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "car", "import", "--store", store, car); err != nil {
		t.Fatal(err)
	}
	v1 := publish(store, "v1", "version one", "--key", key, "--keep", "1", "--keep-for", "1ns")
	if err := get(v1); err != nil {
		t.Fatalf("v1 right after publishing: %v", err)
	}
	v2 := publish(store, "v2", "version two", "--key", key, "--keep", "1", "--keep-for", "1ns")
	if err := get(v2); err != nil {
		t.Fatalf("v2: %v", err)
	}
	if err := get(v1); err == nil {
		t.Fatal("v1 still readable: its blocks were not collected")
	}
	for _, root := range []string{loose, other} {
		if err := get(root); err != nil {
			t.Fatalf("pinned root %s lost: %v", root, err)
		}
	}
}

// TestPinAndGC: `pin ls` lists site and CID pins; `pin rm` then `gc`
// deletes a root's blocks; `pin add` refuses a DAG that is not whole and
// re-pins one that is; `pin rm` of an unpinned root fails.
func TestPinAndGC(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	key := filepath.Join(dir, "site.key")
	out, _, err := run(t, "keygen", "--out", key)
	must(t, err)
	site := strings.TrimSpace(out)
	publish := func(name, body string, args ...string) string {
		return publishPage(t, store, filepath.Join(dir, name), body, args...)
	}
	byCID := publish("a", "pinned by CID")
	siteRoot := publish("b", "the site's", "--key", key)
	out, _, err = run(t, "pin", "ls", "--store", store)
	must(t, err)
	if !strings.Contains(out, "cid") || !strings.Contains(out, byCID) || !strings.Contains(out, site+"/1") || !strings.Contains(out, siteRoot) {
		t.Fatalf("pin ls:\n%s", out)
	}
	get := func(root string) error { return getPage(t, store, root) }
	if _, _, err := run(t, "pin", "rm", "--store", store, siteRoot); !errors.Is(err, errNotPinned) {
		t.Fatalf("pin rm of a site's root: %v", err)
	}
	if _, _, err := run(t, "pin", "rm", "--store", store, byCID); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, "gc", "--store", store)
	if err != nil || !strings.HasPrefix(out, "deleted ") || strings.HasPrefix(out, "deleted 0 ") {
		t.Fatalf("gc: %q %v", out, err)
	}
	if err := get(byCID); err == nil {
		t.Fatal("an unpinned root survived gc")
	}
	if err := get(siteRoot); err != nil {
		t.Fatalf("the site's pinned root: %v", err)
	}
	if _, _, err := run(t, "pin", "add", "--store", store, byCID); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("pin add of a root not in the store: %v", err)
	}
	if _, _, err := run(t, "pin", "add", "--store", store, siteRoot); err != nil {
		t.Fatal(err)
	}
	out, _, _ = run(t, "pin", "ls", "--store", store)
	if n := strings.Count(out, siteRoot); n != 2 {
		t.Fatalf("pin ls after pin add: %d lines name the root:\n%s", n, out)
	}
}
