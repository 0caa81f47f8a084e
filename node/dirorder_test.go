package node_test

import (
	"context"
	"errors"
	"testing"

	"github.com/hearthcdn/hearth/internal/dagtest"
	"github.com/hearthcdn/hearth/node"
)

// A basic directory's links must be strictly increasing by name bytes (the
// dag-pb spec's order): out of order and repeated names, even far apart,
// are refused with ErrLinkOrder (an ErrBadNode); byte order, not case or
// Unicode order, is what counts.
func TestDecodeDirLinkOrder(t *testing.T) {
	leaf := dagtest.Raw([]byte("x"))
	sub := dagtest.Dir()
	ok := func(names ...string) []node.Link {
		var ls []node.Link
		for _, n := range names {
			ls = append(ls, dagtest.Link(n, leaf))
		}
		return ls
	}
	for _, tc := range []struct {
		name  string
		links []node.Link
		want  error
	}{
		{"empty", nil, nil},
		{"sorted", ok("a", "b", "c"), nil},
		{"byte order", ok("B", "Z", "a", "z", "é"), nil},
		{"prefix first", ok("a", "a.txt", "ab"), nil},
		{"reversed", ok("b", "a"), node.ErrLinkOrder},
		{"adjacent duplicate", ok("a", "a"), node.ErrLinkOrder},
		{"duplicate far apart", []node.Link{dagtest.Link("a", dagtest.Symlink("/tmp")), dagtest.Link("b", leaf), dagtest.Link("a", sub)}, node.ErrLinkOrder},
		{"unicode order is not byte order", ok("é", "z"), node.ErrLinkOrder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := dagtest.Dir(tc.links...)
			n, err := node.Decode(b.Cid, b.Data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode: %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				if !errors.Is(err, node.ErrBadNode) {
					t.Fatalf("%v does not wrap ErrBadNode", err)
				}
				return
			}
			// Every name is found by lookup.
			for _, l := range tc.links {
				got, err := node.Lookup(context.Background(), node.NewMemStore(), n, l.Name)
				if err != nil || !got.Cid.Equals(l.Cid) {
					t.Fatalf("Lookup(%q): %v %v", l.Name, got, err)
				}
			}
		})
	}
}
