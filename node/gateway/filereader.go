package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hearthcdn/hearth/node"
)

// leafCacheBytes bounds the bytes of verified leaves a FileReader keeps:
// four 256 KiB leaves. A multi-range request whose ranges come back to a
// leaf already read (unsorted or overlapping ranges, a content-type sniff
// then a range) reads and hashes it once.
const leafCacheBytes = 4 * node.ChunkSize

// FileReader reads a UnixFS file (a raw leaf or a dag-pb file DAG) through
// a node.Getter, as an io.ReadSeeker (one reader per request, not safe for
// concurrent use). A read descends from the file's root to the leaf holding
// the offset, using the nodes' blocksizes, so loading a leaf costs O(depth)
// block reads. The most recently read leaves, up to leafCacheBytes (1 MiB)
// in all, are kept, so seeking back into one of them reads no block.
// Blocks are only as trustworthy as the Getter: pass a verifying one.
type FileReader struct {
	ctx  context.Context
	g    node.Getter
	f    *node.Node
	size int64
	off  int64

	leaf    []byte // bytes of the current leaf
	leafOff int64  // file offset of leaf[0]

	cache      []cachedLeaf // least recently used first
	cacheBytes int
}

// cachedLeaf is a leaf's bytes and their file offset.
type cachedLeaf struct {
	off  int64
	data []byte
}

// NewFileReader returns a reader over file f. Errors wrap node.ErrNotDir
// when f is not a file.
func NewFileReader(ctx context.Context, g node.Getter, f *node.Node) (*FileReader, error) {
	if !f.IsFile() {
		return nil, fmt.Errorf("reading a %s: %w", f.Kind, node.ErrNotDir)
	}
	r := &FileReader{ctx: ctx, g: g, f: f, size: int64(f.FileSize)}
	if f.Kind == node.KindRaw {
		r.leaf = f.Data
	}
	return r, nil
}

// Size returns the file's length in bytes.
func (r *FileReader) Size() int64 { return r.size }

// Read implements io.Reader.
func (r *FileReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.off < r.leafOff || r.off >= r.leafOff+int64(len(r.leaf)) {
		if err := r.load(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.leaf[r.off-r.leafOff:])
	r.off += int64(n)
	return n, nil
}

// load makes the leaf holding byte r.off current: from the cache, else
// read from the root down.
func (r *FileReader) load() error {
	for i, c := range r.cache {
		if r.off >= c.off && r.off < c.off+int64(len(c.data)) {
			copy(r.cache[i:], r.cache[i+1:])
			r.cache[len(r.cache)-1] = c
			r.leaf, r.leafOff = c.data, c.off
			return nil
		}
	}
	data, off, err := r.descend()
	if err != nil {
		return fmt.Errorf("reading %s at %d: %w", r.f.Cid, r.off, err)
	}
	r.leaf, r.leafOff = data, off
	r.remember(data, off)
	return nil
}

// descend walks from the file's root to the node whose own data holds
// byte r.off, reading only the nodes on that path (each once), and
// returns that data and its file offset. The checks are
// node.FileSegments': a child's FileSize must match its parent's
// blocksize, and a file DAG has at most 64 levels.
func (r *FileReader) descend() ([]byte, int64, error) {
	n, base := r.f, uint64(0)
	off := uint64(r.off)
	for depth := 0; ; depth++ {
		if depth > 64 {
			return nil, 0, fmt.Errorf("file DAG too deep: %w", node.ErrBadNode)
		}
		if !n.IsFile() {
			return nil, 0, fmt.Errorf("reading bytes of a %s: %w", n.Kind, node.ErrNotDir)
		}
		if off < base+uint64(len(n.Data)) {
			return n.Data, int64(base), nil
		}
		pos := base + uint64(len(n.Data))
		next := -1
		for i, size := range n.BlockSizes {
			if off >= pos && off-pos < size {
				next = i
				break
			}
			pos += size
		}
		if next < 0 || next >= len(n.Links) {
			return nil, 0, fmt.Errorf("no block holds the offset: %w", node.ErrBadNode)
		}
		l, size := n.Links[next], n.BlockSizes[next]
		child, _, err := node.GetNode(r.ctx, r.g, l.Cid)
		if err != nil {
			return nil, 0, err
		}
		if child.FileSize != size {
			return nil, 0, fmt.Errorf("child %s holds %d bytes, parent says %d: %w", l.Cid, child.FileSize, size, node.ErrBadNode)
		}
		n, base = child, pos
	}
}

// remember adds a leaf to the cache, evicting the least recently used
// leaves beyond leafCacheBytes.
func (r *FileReader) remember(data []byte, off int64) {
	if len(data) > leafCacheBytes {
		return
	}
	for r.cacheBytes+len(data) > leafCacheBytes && len(r.cache) > 0 {
		r.cacheBytes -= len(r.cache[0].data)
		r.cache[0] = cachedLeaf{}
		r.cache = r.cache[1:]
	}
	r.cache = append(r.cache, cachedLeaf{off: off, data: data})
	r.cacheBytes += len(data)
}

var errNegativeOffset = errors.New("seek to a negative offset")

// Seek implements io.Seeker.
func (r *FileReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return r.off, fmt.Errorf("seek whence %d: %w", whence, ErrBadRequest)
	}
	if offset < 0 {
		return r.off, errNegativeOffset
	}
	r.off = offset
	return offset, nil
}
