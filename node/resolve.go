package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
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

// Entries returns the entries of directory dir (basic or HAMT-sharded) as
// they are read, without holding the listing in memory: a basic
// directory's in link order (by name), a sharded one's in shard order (by
// the names' hashes). Sub-shards are read through g, each at most once: a
// shard linked at two positions, an entry whose name's hash does not lead to
// where it was found, or two links in one slot end the sequence with an
// error wrapping ErrBadNode (see hamtEntries), so a listing costs the
// distinct shard blocks it reads, never what they claim. The sequence ends
// at the first error, yielded with a zero Entry; a listing of something
// that is not a directory yields one error wrapping ErrNotDir.
func Entries(ctx context.Context, g Getter, dir *Node) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		emit := func(e Entry) error {
			if !yield(e, nil) {
				return errStopped
			}
			return nil
		}
		var err error
		switch dir.Kind {
		case KindDirectory:
			for _, l := range dir.Links {
				if err = emit(Entry{Name: l.Name, Cid: l.Cid, Tsize: l.Tsize}); err != nil {
					break
				}
			}
		case KindHAMTShard:
			err = hamtEntries(ctx, g, dir, emit)
		default:
			err = fmt.Errorf("listing a %s: %w", dir.Kind, ErrNotDir)
		}
		if err != nil && !errors.Is(err, errStopped) {
			yield(Entry{}, err)
		}
	}
}

// errStopped ends a walk whose consumer wants no more.
var errStopped = errors.New("stopped by the consumer")

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
	w := fileWalk{ctx: ctx, g: g, start: start, end: end, visit: func(n *Node, base uint64) error {
		if len(n.Data) == 0 {
			return nil
		}
		s, e := clip(base, uint64(len(n.Data)), start, end)
		if s < e {
			segs = append(segs, Segment{Cid: n.Cid, Offset: s - base, Len: e - s, FileOffset: s})
		}
		return nil
	}}
	err := w.walk(f, 0, 0)
	return segs, err
}

// WriteFile writes bytes [start, end) of file f to w, reading blocks through
// g. It stops with ctx's error once ctx ends, checked before every block.
func WriteFile(ctx context.Context, g Getter, f *Node, start, end uint64, w io.Writer) error {
	fw := fileWalk{ctx: ctx, g: g, start: start, end: end, visit: func(n *Node, base uint64) error {
		s, e := clip(base, uint64(len(n.Data)), start, end)
		if s >= e {
			return nil
		}
		_, err := w.Write(n.Data[s-base : e-base])
		return err
	}}
	return fw.walk(f, 0, 0)
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

// fileWalk visits the nodes of a file DAG whose bytes meet [start, end),
// in file order, each before its children.
//
// A walk that reads bytes (whole nil) visits every occurrence of a node
// that holds some of them, so its cost follows the bytes it hands on, not
// the blocks; sub-DAGs of no bytes are not read.
//
// A walk that gathers blocks (whole set, as a traversal emitting each block
// once) visits each node whose bytes lie inside the range at most once:
// whole maps such a node, once its sub-DAG has been walked, to its file size,
// and a later link to it is checked against that size and not followed. Only
// nodes holding start or end are walked more than once, at most a few per
// level, so the cost follows the distinct blocks, not the size the links
// claim (a file whose levels all link many times to one child). Zero-length
// children are walked when their offset lies strictly inside the range.
type fileWalk struct {
	ctx        context.Context
	g          Getter
	get        func(cid.Cid) (*Node, error) // if set, reads nodes instead of g
	start, end uint64
	visit      func(n *Node, base uint64) error
	whole      map[string]uint64
}

// walk visits n, whose first byte is at file offset base, and its
// descendants that meet the range.
func (w *fileWalk) walk(n *Node, base uint64, depth int) error {
	if depth > 64 {
		return fmt.Errorf("file DAG too deep: %w", ErrBadNode)
	}
	if !n.IsFile() {
		return fmt.Errorf("reading bytes of a %s: %w", n.Kind, ErrNotDir)
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if err := w.visit(n, base); err != nil {
		return err
	}
	off := base + uint64(len(n.Data))
	for i, l := range n.Links {
		size := n.BlockSizes[i]
		cs, ce := off, off+size
		off = ce
		if size == 0 {
			if w.whole == nil || cs <= w.start || cs >= w.end {
				continue
			}
		} else if ce <= w.start || cs >= w.end {
			continue
		}
		// Inside: every descendant meets the range, so one walk reads the
		// whole sub-DAG. A node starting at start or ending at end is not
		// counted inside: a zero-length descendant at its edge is left out
		// there and not elsewhere.
		inside := w.whole != nil && cs > w.start && ce < w.end
		k := l.Cid.KeyString()
		if inside {
			if got, ok := w.whole[k]; ok {
				if got != size {
					return fmt.Errorf("child %s holds %d bytes, parent says %d: %w", l.Cid, got, size, ErrBadNode)
				}
				continue
			}
		}
		var child *Node
		var err error
		if w.get != nil {
			child, err = w.get(l.Cid)
		} else {
			child, _, err = GetNode(w.ctx, w.g, l.Cid)
		}
		if err != nil {
			return err
		}
		if child.FileSize != size {
			return fmt.Errorf("child %s holds %d bytes, parent says %d: %w", l.Cid, child.FileSize, size, ErrBadNode)
		}
		if err := w.walk(child, cs, depth+1); err != nil {
			return err
		}
		if inside {
			w.whole[k] = size
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
