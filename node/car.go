//go:build !js

package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	cid "github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	"github.com/multiformats/go-multihash"
)

// CARWriter streams a CARv1 (https://ipld.io/specs/transport/car/carv1/):
// the header with go-car, then one section per Put, written at once. It
// keeps no index of what it wrote, so its memory does not grow with the
// CAR: callers write each block once (Traverse emits each once). Blocks
// with identity-hashed CIDs are left out, as go-car leaves them out: their
// bytes are in their CIDs.
type CARWriter struct {
	w   io.Writer
	buf []byte
}

// NewCARWriter writes the CARv1 header naming roots to w.
func NewCARWriter(w io.Writer, roots ...cid.Cid) (*CARWriter, error) {
	// Only the io.Writer: given a file (an io.WriterAt), go-car would
	// leave room for a header it writes only when finalized.
	if _, err := storage.NewWritable(struct{ io.Writer }{w}, roots, car.WriteAsCarV1(true)); err != nil {
		return nil, fmt.Errorf("writing CAR header: %w", err)
	}
	return &CARWriter{w: w}, nil
}

// Put writes one block section: the varint length of CID and data, the
// CID's bytes, the data. Errors are the writer's.
func (cw *CARWriter) Put(ctx context.Context, b Block) error {
	if b.Cid.Prefix().MhType == multihash.IDENTITY {
		return nil
	}
	k := b.Cid.KeyString() // the CID's bytes
	cw.buf = binary.AppendUvarint(cw.buf[:0], uint64(len(k)+len(b.Data)))
	cw.buf = append(cw.buf, k...)
	if _, err := cw.w.Write(cw.buf); err != nil {
		return fmt.Errorf("writing CAR block %s: %w", b.Cid, err)
	}
	if _, err := cw.w.Write(b.Data); err != nil {
		return fmt.Errorf("writing CAR block %s: %w", b.Cid, err)
	}
	return nil
}

// CARReader reads a CARv1 or CARv2 stream block by block, with go-car.
// It does not verify blocks: callers use Verify or Traverse.
type CARReader struct {
	br *car.BlockReader
}

// NewCARReader reads the header from r. Sections over MaxBlockLen plus a CID
// are refused (ErrTooLarge), so a hostile stream cannot make it allocate
// without bound.
func NewCARReader(r io.Reader) (*CARReader, error) {
	br, err := car.NewBlockReader(r,
		car.MaxAllowedHeaderSize(64<<10),
		car.MaxAllowedSectionSize(MaxBlockLen+256),
		car.WithTrustedCAR(true)) // callers verify, with one code path
	if err != nil {
		return nil, fmt.Errorf("reading CAR header: %w", err)
	}
	return &CARReader{br: br}, nil
}

// Roots returns the header's roots.
func (cr *CARReader) Roots() []cid.Cid { return cr.br.Roots }

// Next returns the next block, or io.EOF after the last one. A truncated
// stream yields io.ErrUnexpectedEOF.
func (cr *CARReader) Next() (Block, error) {
	b, err := cr.br.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Block{}, io.EOF
		}
		return Block{}, fmt.Errorf("reading CAR: %w", err)
	}
	return Block{Cid: b.Cid(), Data: b.RawData()}, nil
}

// ExportCAR writes the whole DAG under root from g to w as a CARv1, in
// Trustless Gateway order, verifying every block on the way.
func ExportCAR(ctx context.Context, g Getter, root cid.Cid, w io.Writer) error {
	cw, err := NewCARWriter(w, root)
	if err != nil {
		return err
	}
	_, err = Traverse(ctx, g, Request{Root: root, Scope: ScopeAll}, func(b Block) error {
		return cw.Put(ctx, b)
	})
	return err
}

// CARImport describes what ImportCAR read and stored.
type CARImport struct {
	Roots  []cid.Cid // the header's roots
	Blocks int       // blocks read and accepted
	// Added are the blocks the import durably stored that bs did not hold
	// before; on failure, what DiscardBlocks should take back.
	Added []cid.Cid
}

// ImportCAR reads a CARv1 or CARv2 from r into bs, in any block order.
// Every block is verified (ErrCorrupt) and every dag-pb block must decode
// as UnixFS (ErrBadNode, such as ErrLinkOrder for a directory whose names
// are not strictly increasing) before anything is stored; blocks bs already
// holds are not written again. Accepted blocks are stored in durable
// batches of up to batchBytes (0: 8 MiB). It stops with ctx's error once
// ctx ends, checked before every block. On an error the batch not yet
// written is dropped, and the result still lists the roots and what was
// Added before, for the caller to discard (DiscardBlocks).
//
// Unlike ImportDAG, it neither requires parents first nor checks that the
// blocks belong to the roots' DAGs: it reads CARs written children first.
func ImportCAR(ctx context.Context, bs Blockstore, r io.Reader, batchBytes int) (CARImport, error) {
	var out CARImport
	cr, err := NewCARReader(r)
	if err != nil {
		return out, err
	}
	out.Roots = cr.Roots()
	out.Blocks, _, err = importBlocks(ctx, bs, cr, batchBytes, &out.Added, func(b Block) error {
		if err := Verify(b.Cid, b.Data); err != nil {
			return fmt.Errorf("importing CAR: %w", err)
		}
		if b.Cid.Type() == CodecDagPB {
			if _, err := Decode(b.Cid, b.Data); err != nil {
				return fmt.Errorf("importing CAR: %w", err)
			}
		}
		return nil
	})
	return out, err
}
