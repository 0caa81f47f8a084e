//go:build !js

package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// Decoders must never panic and must either fail or return a node that
// re-checks cleanly.
func FuzzDecode(f *testing.F) {
	bs, root, _ := site(f)
	for c, err := range bs.AllKeys(context.Background()) {
		if err != nil {
			f.Fatal(err)
		}
		if c.Type() == node.CodecDagPB {
			d, _ := bs.Get(context.Background(), c)
			f.Add(d)
		}
	}
	f.Add([]byte{0x0a, 0x02, 0x08, 0x01})
	_ = root
	f.Fuzz(func(t *testing.T, data []byte) {
		c := node.Sum(node.CodecDagPB, data)
		n, err := node.Decode(c, data)
		if err != nil {
			if !errors.Is(err, node.ErrBadNode) {
				t.Fatalf("error not wrapping ErrBadNode: %v", err)
			}
			return
		}
		if n.Kind == node.KindFile && len(n.BlockSizes) != len(n.Links) {
			t.Fatal("file node with mismatched blocksizes accepted")
		}
		// Reading through a decoded node never panics either.
		g := node.GetterFunc(func(ctx context.Context, c cid.Cid) ([]byte, error) { return data, nil })
		if n.IsDir() {
			for _, err := range node.Entries(context.Background(), g, n) {
				if err != nil {
					break
				}
			}
		}
		if n.IsFile() {
			_ = node.WriteFile(context.Background(), g, n, 0, n.FileSize, io.Discard)
		}
	})
}

func FuzzCARReader(f *testing.F) {
	bs, root, _ := site(f)
	var buf bytes.Buffer
	if err := node.ExportCAR(context.Background(), bs, root, &buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:100])
	f.Fuzz(func(t *testing.T, data []byte) {
		dst := node.NewMemStore()
		_, n, _ := node.ImportCAR(context.Background(), dst, bytes.NewReader(data), 0)
		if n != dst.Len() {
			t.Fatalf("reported %d blocks, stored %d", n, dst.Len())
		}
		for c := range dst.AllKeys(context.Background()) {
			d, _ := dst.Get(context.Background(), c)
			if err := node.Verify(c, d); err != nil {
				t.Fatalf("stored unverified block: %v", err)
			}
		}
	})
}

func FuzzRootRecord(f *testing.F) {
	key := newKey(f)
	r, _ := node.NewRootRecord(key, 1, node.Sum(node.CodecDagPB, []byte("x")), time.Unix(1700000000, 0))
	f.Add(r.Bytes())
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := node.ParseRootRecord(data)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to exactly the same bytes.
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatal("non-canonical record accepted")
		}
		if got.Site == site && !bytes.Equal(data, r.Bytes()) && got.Seq == 1 && got.Root.Equals(r.Root) && got.Published.Equal(r.Published) {
			t.Fatal("forged record accepted")
		}
	})
}

func FuzzParseCID(f *testing.F) {
	f.Add(node.Sum(node.CodecRaw, []byte("x")).String())
	f.Add("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG")
	f.Add("bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := node.ParseCID(s)
		if err != nil {
			return
		}
		if c.Type() != node.CodecRaw && c.Type() != node.CodecDagPB {
			t.Fatalf("accepted codec 0x%x", c.Type())
		}
	})
}
