package order

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
)

// Walk emits exactly what node.Traverse emits, in the same order.
func TestSameAsTraverse(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 5*node.ChunkSize+77)
	rand.Read(big)
	files := map[string][]byte{
		"a/b/big.bin": big,
		"zeros.bin":   make([]byte, 3*node.ChunkSize+5),
		"small.txt":   []byte("small"),
		"index.html":  []byte("<p>"),
	}
	for i := range 1200 { // a HAMT-sharded directory
		files[fmt.Sprintf("many/f%04d", i)] = []byte(fmt.Sprint(i))
	}
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, b, 0o644)
	}
	st := node.NewMemStore()
	root, err := importer.New(st, importer.Options{}).ImportPath(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, req := range []node.Request{
		{Root: root, Path: []string{"a", "b", "big.bin"}, Scope: node.ScopeEntity},
		{Root: root, Path: []string{"a", "b", "big.bin"}, Scope: node.ScopeEntity, Bytes: &node.ByteRange{From: 300000, To: 900000}},
		{Root: root, Path: []string{"a", "b", "big.bin"}, Scope: node.ScopeEntity, Bytes: &node.ByteRange{From: -1000, ToEnd: true}},
		{Root: root, Path: []string{"zeros.bin"}, Scope: node.ScopeEntity},
		{Root: root, Path: []string{"small.txt"}, Scope: node.ScopeEntity},
		{Root: root, Path: []string{"many", "f0777"}, Scope: node.ScopeEntity},
		{Root: root, Path: []string{"many"}, Scope: node.ScopeEntity},
		{Root: root, Path: []string{"a"}, Scope: node.ScopeEntity},
		{Root: root, Scope: node.ScopeBlock},
		{Root: root, Path: []string{"a"}, Scope: node.ScopeAll},
	} {
		var want, got []string
		if _, err := node.Traverse(ctx, st, req, func(b node.Block) error { want = append(want, b.Cid.String()); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := Walk(ctx, st, req, func(b node.Block) error { got = append(got, b.Cid.String()); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%v %s %v: walk\n%v\ntraverse\n%v", req.Path, req.Scope, req.Bytes, got, want)
		}
	}
}
