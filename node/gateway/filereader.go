package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hearthcdn/hearth/node"
)

// FileReader reads a UnixFS file (a raw leaf or a dag-pb file DAG) through
// a node.Getter, as an io.ReadSeeker (and io.ReaderAt-free: one reader per
// request). It holds at most one leaf in memory; a read descends from the
// file's root to the leaf holding the offset, using the nodes' blocksizes,
// so a seek costs O(depth) block reads. Blocks are only as trustworthy as
// the Getter: pass a verifying one.
type FileReader struct {
	ctx  context.Context
	g    node.Getter
	f    *node.Node
	size int64
	off  int64

	leaf    []byte // bytes of the current leaf
	leafOff int64  // file offset of leaf[0]
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

// load fetches the leaf holding byte r.off.
func (r *FileReader) load() error {
	segs, err := node.FileSegments(r.ctx, r.g, r.f, uint64(r.off), uint64(r.off)+1)
	if err != nil {
		return fmt.Errorf("reading %s at %d: %w", r.f.Cid, r.off, err)
	}
	if len(segs) == 0 {
		return fmt.Errorf("reading %s at %d: no block holds the offset: %w", r.f.Cid, r.off, node.ErrBadNode)
	}
	s := segs[0]
	n, _, err := node.GetNode(r.ctx, r.g, s.Cid)
	if err != nil {
		return fmt.Errorf("reading %s at %d: %w", r.f.Cid, r.off, err)
	}
	if s.Offset+s.Len > uint64(len(n.Data)) {
		return fmt.Errorf("reading %s at %d: leaf %s is short: %w", r.f.Cid, r.off, s.Cid, node.ErrBadNode)
	}
	r.leaf = n.Data
	r.leafOff = int64(s.FileOffset - s.Offset)
	return nil
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
