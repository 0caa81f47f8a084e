//go:build !js

package harness

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
)

// WriteTree writes files (slash-separated relative path → content) under
// dir, creating directories.
func WriteTree(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// ImportDir imports dir into a fresh MemStore, as `hearth publish` does,
// and returns the store and root.
func ImportDir(t testing.TB, dir string) (*node.MemStore, cid.Cid) {
	t.Helper()
	ms := node.NewMemStore()
	root, err := importer.New(ms, importer.Options{}).ImportPath(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return ms, root
}

// BuildDAG writes files into a temporary directory and imports it.
func BuildDAG(t testing.TB, files map[string][]byte) (*node.MemStore, cid.Cid) {
	t.Helper()
	dir := t.TempDir()
	WriteTree(t, dir, files)
	return ImportDir(t, dir)
}

// DAGBlocks returns every block reachable from root in g, by key.
func DAGBlocks(t testing.TB, g node.Getter, root cid.Cid) map[string]node.Block {
	t.Helper()
	out := map[string]node.Block{}
	_, err := node.Traverse(context.Background(), g, node.Request{Root: root, Scope: node.ScopeAll}, func(b node.Block) error {
		out[b.Cid.KeyString()] = node.Block{Cid: b.Cid, Data: append([]byte(nil), b.Data...)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// CopyTree copies the regular files and directories under src to dst,
// following symlinks.
func CopyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// SameTree fails the test unless the trees under a and b hold the same
// files with the same bytes.
func SameTree(t testing.TB, a, b string) {
	t.Helper()
	list := func(root string) map[string]string {
		m := map[string]string{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if fi.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[filepath.ToSlash(rel)] = string(data)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ma, mb := list(a), list(b)
	if len(ma) != len(mb) {
		t.Fatalf("%s has %d files, %s has %d", a, len(ma), b, len(mb))
	}
	for k, v := range ma {
		w, ok := mb[k]
		if !ok {
			t.Fatalf("%s missing in %s", k, b)
		}
		if v != w {
			t.Fatalf("%s differs between %s and %s", k, a, b)
		}
	}
}
