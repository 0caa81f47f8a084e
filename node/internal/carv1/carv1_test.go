//go:build !js

package carv1_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/internal/carv1"
)

// car writes blocks as a CARv1 with node's go-car writer.
func car(t testing.TB, blocks ...node.Block) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := node.NewCARWriter(&buf, blocks[0].Cid)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if err := w.Put(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func blocks(n int) []node.Block {
	var out []node.Block
	for i := range n {
		d := bytes.Repeat([]byte{byte(i)}, 100*i+1)
		out = append(out, node.Block{Cid: node.Sum(node.CodecRaw, d), Data: d})
	}
	return out
}

func TestReadGoCarOutput(t *testing.T) {
	bs := blocks(5)
	r, err := carv1.NewReader(bytes.NewReader(car(t, bs...)))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Roots()) != 1 || !r.Roots()[0].Equals(bs[0].Cid) {
		t.Fatalf("roots %v, want [%s]", r.Roots(), bs[0].Cid)
	}
	for i, want := range bs {
		c, data, err := r.Next()
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if !c.Equals(want.Cid) || !bytes.Equal(data, want.Data) {
			t.Fatalf("block %d differs", i)
		}
	}
	if _, _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after last block: %v, want io.EOF", err)
	}
}

func TestTruncated(t *testing.T) {
	b := car(t, blocks(3)...)
	hdrEnd := int(b[0]) + 1
	for cut := 1; cut < len(b); cut++ {
		r, err := carv1.NewReader(bytes.NewReader(b[:cut]))
		if cut < hdrEnd {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("cut %d in header: %v", cut, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut %d: header: %v", cut, err)
		}
		for {
			_, _, err = r.Next()
			if err != nil {
				break
			}
		}
		// A cut between sections is a clean end; inside one it is not.
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut %d: %v", cut, err)
		}
	}
}

func TestRejects(t *testing.T) {
	for name, in := range map[string][]byte{
		"empty header":   {0x00},
		"not a map":      {0x01, 0x01},
		"version 2":      {0x0f, 0xa2, 0x65, 'r', 'o', 'o', 't', 's', 0x80, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x02},
		"no roots":       {0x09, 0xa1, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01},
		"huge header":    {0xff, 0xff, 0x7f},
		"indefinite map": {0x01, 0xbf},
	} {
		if _, err := carv1.NewReader(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A valid header followed by an oversized section.
	good := car(t, blocks(1)...)
	hdr := good[:int(good[0])+1]
	big := append(append([]byte{}, hdr...), 0xff, 0xff, 0xff, 0x7f)
	r, err := carv1.NewReader(bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Next(); !errors.Is(err, carv1.ErrTooLarge) {
		t.Fatalf("oversized section: %v", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(car(f, blocks(3)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := carv1.NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for range 1000 {
			if _, _, err := r.Next(); err != nil {
				return
			}
		}
	})
}
