//go:build !js

package node

import (
	"context"
	"errors"
	"fmt"
	"io"

	cid "github.com/ipfs/go-cid"
)

// DAGImport describes what ImportDAG read and stored.
type DAGImport struct {
	Blocks int   // blocks read, all of them within the DAG
	Bytes  int64 // their lengths summed
	// Added are the blocks the import stored that bs did not hold before,
	// durably stored; on failure, what DiscardBlocks should take back.
	Added []cid.Cid
}

// ImportDAG reads a CARv1 or CARv2 from r into bs, accepting only blocks of
// the DAG under root, sent parents first: each block must be root or be
// linked by a block read before it (the order a traversal emits, as
// PublishRoot and ExportCAR write), and each is accepted once. So a stream
// can never carry more than the distinct blocks the DAG names: a block
// outside it, or sent twice, stops the import with an error wrapping
// ErrUnexpectedBlock, before it is stored. Every block is verified first
// (ErrCorrupt); dag-pb blocks must decode as UnixFS (ErrBadNode), since
// their links say what may follow. Blocks bs already holds are not
// written again. Accepted blocks are stored in durable batches of up to
// batchBytes (0: 8 MiB); on an error, the batch not yet written is
// dropped, and the result still lists what was Added before.
//
// ImportDAG does not check that the DAG is whole at the end: links to
// blocks bs already holds, or that were never sent, are not followed.
func ImportDAG(ctx context.Context, bs Blockstore, root cid.Cid, r io.Reader, batchBytes int) (DAGImport, error) {
	var out DAGImport
	cr, err := NewCARReader(r)
	if err != nil {
		return out, err
	}
	// wanted holds the blocks that may still come: root, and every link of
	// a block read. A block read leaves it, so a repeat is refused.
	wanted := map[string]struct{}{root.KeyString(): {}}
	out.Blocks, out.Bytes, err = importBlocks(ctx, bs, cr, batchBytes, &out.Added, func(b Block) error {
		k := b.Cid.KeyString()
		if _, ok := wanted[k]; !ok {
			return fmt.Errorf("block %s is not linked from root %s by a block sent before it, or is sent twice: %w", b.Cid, root, ErrUnexpectedBlock)
		}
		delete(wanted, k)
		if err := Verify(b.Cid, b.Data); err != nil {
			return fmt.Errorf("importing DAG %s: %w", root, err)
		}
		if b.Cid.Type() == CodecDagPB {
			nd, err := Decode(b.Cid, b.Data)
			if err != nil {
				return fmt.Errorf("importing DAG %s: %w", root, err)
			}
			for _, l := range nd.Links {
				wanted[l.Cid.KeyString()] = struct{}{}
			}
		}
		return nil
	})
	return out, err
}

// importBlocks reads cr to its end, hands each block to accept (which
// checks it, and refuses it with an error that ends the import), and
// stores the accepted blocks bs lacks in durable batches of up to
// batchBytes (0: 8 MiB), appending each stored block to added. It returns
// the blocks accepted and their bytes. On an error, the batch not yet
// written is dropped; added lists what was stored before.
func importBlocks(ctx context.Context, bs Blockstore, cr *CARReader, batchBytes int, added *[]cid.Cid, accept func(Block) error) (n int, bytes int64, err error) {
	if batchBytes <= 0 {
		batchBytes = 8 << 20
	}
	var batch []Block
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := bs.PutMany(ctx, batch); err != nil {
			return err
		}
		for _, b := range batch {
			*added = append(*added, b.Cid)
		}
		batch, size = batch[:0], 0
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return n, bytes, err
		}
		b, err := cr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, bytes, err
		}
		if err := accept(b); err != nil {
			return n, bytes, err
		}
		n++
		bytes += int64(len(b.Data))
		has, err := bs.Has(ctx, b.Cid)
		if err != nil {
			return n, bytes, err
		}
		if has {
			continue
		}
		batch = append(batch, b)
		size += len(b.Data)
		if size >= batchBytes {
			if err := flush(); err != nil {
				return n, bytes, err
			}
		}
	}
	return n, bytes, flush()
}

// DiscardBlocks deletes, of the blocks cs (a failed upload's), those that
// nothing keeps, as CollectGarbage decides: no pin's DAG, no newest record's
// DAG of a site outside managed, and not in live, holds them. It reads
// the kept DAGs' inner nodes, not the whole store. Errors as
// CollectGarbage; nothing is deleted if a pin is unreadable or incomplete.
func DiscardBlocks(ctx context.Context, s GCStore, cs []cid.Cid, live map[string]struct{}, managed ...SiteID) (GCStats, error) {
	if len(cs) == 0 {
		return GCStats{}, nil
	}
	more, err := markKept(ctx, s, live, managed)
	if err != nil {
		return GCStats{}, err
	}
	keys := func(yield func(cid.Cid, error) bool) {
		for _, c := range cs {
			if !yield(c, nil) {
				return
			}
		}
	}
	return sweep(ctx, s, keys, live, more)
}
