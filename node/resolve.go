package node

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"

	cid "github.com/ipfs/go-cid"
)

// SplitPath splits a slash-separated content path into segments, dropping
// empty ones. It refuses "." and ".." segments (ErrNoSuchPath): content
// paths are never relative.
func SplitPath(p string) ([]string, error) {
	var segs []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "":
			continue
		case ".", "..":
			return nil, fmt.Errorf("path %q: relative segment: %w", p, ErrNoSuchPath)
		}
		segs = append(segs, s)
	}
	return segs, nil
}

// SplitEscapedPath splits an escaped URL path (RFC 3986) into unescaped
// segments with SplitPath's rules: empty segments are dropped; a "." or
// ".." segment, or a malformed escape, is an error wrapping ErrNoSuchPath.
// An escaped slash stays inside its segment (and then matches no entry).
func SplitEscapedPath(p string) ([]string, error) {
	var segs []string
	for _, s := range strings.Split(p, "/") {
		if s == "" {
			continue
		}
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, fmt.Errorf("path segment %q: %v: %w", s, err, ErrNoSuchPath)
		}
		if u == "." || u == ".." {
			return nil, fmt.Errorf("path segment %q: relative segment: %w", s, ErrNoSuchPath)
		}
		segs = append(segs, u)
	}
	return segs, nil
}

// GetNode fetches and decodes the block c from g.
func GetNode(ctx context.Context, g Getter, c cid.Cid) (*Node, []byte, error) {
	raw, err := g.Get(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	n, err := Decode(c, raw)
	if err != nil {
		return nil, nil, err
	}
	return n, raw, nil
}

// lookup returns the link named name in directory dir (basic or HAMT),
// calling visit for every HAMT shard read on the way.
func lookup(ctx context.Context, g Getter, dir *Node, name string, visit func(*Node, []byte) error) (Link, error) {
	switch dir.Kind {
	case KindDirectory:
		i := sort.Search(len(dir.Links), func(i int) bool { return dir.Links[i].Name >= name })
		if i < len(dir.Links) && dir.Links[i].Name == name { // Decode checked the order
			return dir.Links[i], nil
		}
		return Link{}, fmt.Errorf("%q: %w", name, ErrNoSuchPath)
	case KindHAMTShard:
		return hamtLookup(ctx, g, dir, name, visit)
	}
	return Link{}, fmt.Errorf("%q under a %s: %w", name, dir.Kind, ErrNotDir)
}

// Resolve walks path segments from root and returns the node at the end.
// Errors wrap ErrNoSuchPath, ErrNotDir, ErrNotFound or ErrBadNode.
func Resolve(ctx context.Context, g Getter, root cid.Cid, segs []string) (*Node, error) {
	n, _, err := GetNode(ctx, g, root)
	if err != nil {
		return nil, err
	}
	nop := func(*Node, []byte) error { return nil }
	for _, s := range segs {
		l, err := lookup(ctx, g, n, s, nop)
		if err != nil {
			return nil, err
		}
		if n, _, err = GetNode(ctx, g, l.Cid); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Entry is one directory entry.
type Entry struct {
	Name string
	Cid  cid.Cid
	// Tsize is the cumulative DAG size the parent recorded for this entry, in bytes.
	Tsize uint64
}

// ListDir returns the entries of a directory (basic or HAMT-sharded) sorted
// by name. Sharded directories read every shard block through g, stopping
// with ctx's error once ctx ends.
func ListDir(ctx context.Context, g Getter, dir *Node) ([]Entry, error) {
	var out []Entry
	switch dir.Kind {
	case KindDirectory:
		for _, l := range dir.Links {
			out = append(out, Entry{Name: l.Name, Cid: l.Cid, Tsize: l.Tsize})
		}
	case KindHAMTShard:
		var walk func(*Node, int) error
		walk = func(s *Node, depth int) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if depth > 16 {
				return fmt.Errorf("HAMT too deep: %w", ErrBadNode)
			}
			for _, l := range s.Links {
				if name := hamtEntryName(s, l); name != "" {
					if err := checkName(name); err != nil {
						return err
					}
					out = append(out, Entry{Name: name, Cid: l.Cid, Tsize: l.Tsize})
					continue
				}
				child, _, err := GetNode(ctx, g, l.Cid)
				if err != nil {
					return err
				}
				if child.Kind != KindHAMTShard {
					return fmt.Errorf("HAMT child %s is a %s: %w", l.Cid, child.Kind, ErrBadNode)
				}
				if err := walk(child, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		if err := walk(dir, 0); err != nil {
			return nil, err
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	default:
		return nil, fmt.Errorf("listing a %s: %w", dir.Kind, ErrNotDir)
	}
	return out, nil
}

// Segment is a piece of a file: bytes [Offset, Offset+Len) of leaf Cid,
// which lie at byte FileOffset of the file.
type Segment struct {
	Cid        cid.Cid
	Offset     uint64
	Len        uint64
	FileOffset uint64
}

// FileSegments returns, in file order, the leaves and offsets covering bytes
// [start, end) of the file node f, reading interior nodes through g. Bytes
// a node carries inline are reported with that node's CID.
func FileSegments(ctx context.Context, g Getter, f *Node, start, end uint64) ([]Segment, error) {
	var segs []Segment
	err := walkFileRange(ctx, g, f, 0, start, end, 0, func(n *Node, base uint64) error {
		if len(n.Data) == 0 {
			return nil
		}
		s, e := clip(base, uint64(len(n.Data)), start, end)
		if s < e {
			segs = append(segs, Segment{Cid: n.Cid, Offset: s - base, Len: e - s, FileOffset: s})
		}
		return nil
	})
	return segs, err
}

// WriteFile writes bytes [start, end) of file f to w, reading blocks through
// g. It stops with ctx's error once ctx ends, checked before every block.
func WriteFile(ctx context.Context, g Getter, f *Node, start, end uint64, w io.Writer) error {
	return walkFileRange(ctx, g, f, 0, start, end, 0, func(n *Node, base uint64) error {
		s, e := clip(base, uint64(len(n.Data)), start, end)
		if s >= e {
			return nil
		}
		_, err := w.Write(n.Data[s-base : e-base])
		return err
	})
}

func clip(base, n, start, end uint64) (uint64, uint64) {
	s, e := base, base+n
	if s < start {
		s = start
	}
	if e > end {
		e = end
	}
	return s, e
}

// walkFileRange visits n and, in order, every descendant whose bytes
// intersect [start, end). base is the file offset of n's first byte. visit
// gets each node before its children.
func walkFileRange(ctx context.Context, g Getter, n *Node, base, start, end uint64, depth int, visit func(*Node, uint64) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if depth > 64 {
		return fmt.Errorf("file DAG too deep: %w", ErrBadNode)
	}
	if !n.IsFile() {
		return fmt.Errorf("reading bytes of a %s: %w", n.Kind, ErrNotDir)
	}
	if err := visit(n, base); err != nil {
		return err
	}
	off := base + uint64(len(n.Data))
	for i, l := range n.Links {
		size := n.BlockSizes[i]
		cs, ce := off, off+size
		off = ce
		if ce <= start || cs >= end || size == 0 && !(cs >= start && cs < end) {
			continue
		}
		child, _, err := GetNode(ctx, g, l.Cid)
		if err != nil {
			return err
		}
		if child.FileSize != size {
			return fmt.Errorf("child %s holds %d bytes, parent says %d: %w", l.Cid, child.FileSize, size, ErrBadNode)
		}
		if err := walkFileRange(ctx, g, child, cs, start, end, depth+1, visit); err != nil {
			return err
		}
	}
	return nil
}

// Lookup returns the link named name in directory dir (basic or
// HAMT-sharded), reading HAMT shards through g but never the entry itself.
// Errors wrap ErrNoSuchPath or ErrNotDir.
func Lookup(ctx context.Context, g Getter, dir *Node, name string) (Link, error) {
	return lookup(ctx, g, dir, name, func(*Node, []byte) error { return nil })
}

// FileLeaves returns, in file order, every piece of file f: each leaf (or
// node with inline data) with its length and file offset. It reads interior
// nodes only: raw leaves are described from their parents' blocksizes and
// never fetched.
func FileLeaves(ctx context.Context, g Getter, f *Node) ([]Segment, error) {
	var out []Segment
	var walk func(n *Node, base uint64, depth int) error
	walk = func(n *Node, base uint64, depth int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if depth > 64 {
			return fmt.Errorf("file DAG too deep: %w", ErrBadNode)
		}
		if !n.IsFile() {
			return fmt.Errorf("reading bytes of a %s: %w", n.Kind, ErrNotDir)
		}
		if len(n.Data) > 0 {
			out = append(out, Segment{Cid: n.Cid, Len: uint64(len(n.Data)), FileOffset: base})
		}
		off := base + uint64(len(n.Data))
		for i, l := range n.Links {
			size := n.BlockSizes[i]
			if l.Cid.Type() == CodecRaw {
				if size > 0 {
					out = append(out, Segment{Cid: l.Cid, Len: size, FileOffset: off})
				}
			} else {
				child, _, err := GetNode(ctx, g, l.Cid)
				if err != nil {
					return err
				}
				if child.FileSize != size {
					return fmt.Errorf("child %s holds %d bytes, parent says %d: %w", l.Cid, child.FileSize, size, ErrBadNode)
				}
				if err := walk(child, off, depth+1); err != nil {
					return err
				}
			}
			off += size
		}
		return nil
	}
	if f.Kind == KindRaw {
		return []Segment{{Cid: f.Cid, Len: f.FileSize}}, nil
	}
	return out, walk(f, 0, 0)
}
