// Package importer turns files and directory trees into UnixFS DAGs in a
// node.Blockstore, with the parameters of
// `ipfs add -r --cid-version=1 --raw-leaves --hash=blake3` (Kubo's defaults):
// fixed 256 KiB chunks, balanced layout with at most 174 links per node, raw
// leaves, a one-chunk file as its raw block, directory links sorted by name,
// and HAMT sharding (fanout 256) once a directory's estimated size passes
// 256 KiB. It builds with boxo's UnixFS importer, the code Kubo runs, so the
// root CID is the one IPFS tools compute. Symlinks are followed (as with
// `--dereference-symlinks`) and dot-files included.
//
// The importer is native-only; the browser only reads DAGs.
package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	cid "github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/hearthcdn/hearth/node"
)

// ErrSymlinkLoop is returned when following symlinks leads back into a
// directory being imported.
var ErrSymlinkLoop = errors.New("symlink loop")

// Options tune an import. The zero value gives Hearth's content model.
type Options struct {
	// HashCode is the multihash for every block; 0 means BLAKE3-256.
	// SHA2-256 is accepted so tests can compare against published IPFS vectors.
	HashCode uint64
	// Progress, if set, is called after each file with the running totals.
	Progress func(files int, bytes int64)
	// BatchBytes is how many bytes of blocks are written per durable batch;
	// 0 means 8 MiB.
	BatchBytes int
}

// Stats counts what an import read and wrote.
type Stats struct {
	Files, Dirs int
	Bytes       int64 // file bytes read
}

// Importer imports into one store. It is not safe for concurrent use.
type Importer struct {
	opts   Options
	ds     *batchDAG
	prefix cid.Prefix
	stats  Stats
}

// New returns an Importer writing to bs.
func New(bs node.Blockstore, opts Options) *Importer {
	if opts.HashCode == 0 {
		opts.HashCode = node.HashBlake3
	}
	if opts.BatchBytes == 0 {
		opts.BatchBytes = 8 << 20
	}
	return &Importer{
		opts: opts,
		ds:   &batchDAG{w: node.NewBatchWriter(bs, opts.BatchBytes)},
		prefix: cid.Prefix{
			Version:  1,
			Codec:    cid.DagProtobuf,
			MhType:   opts.HashCode,
			MhLength: -1,
		},
	}
}

// Stats returns the running totals.
func (im *Importer) Stats() Stats { return im.stats }

// ImportPath imports a file or directory (following symlinks) and returns
// its root CID once every block is durably stored.
func (im *Importer) ImportPath(ctx context.Context, path string) (cid.Cid, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return cid.Undef, fmt.Errorf("importing: %w", err)
	}
	var nd ipld.Node
	if fi.IsDir() {
		nd, err = im.dir(ctx, path, fi, nil)
	} else if fi.Mode().IsRegular() {
		nd, err = im.fileAt(ctx, path)
	} else {
		err = fmt.Errorf("importing %s: not a regular file or directory", path)
	}
	if err != nil {
		return cid.Undef, err
	}
	if err := im.ds.flush(ctx); err != nil {
		return cid.Undef, err
	}
	return nd.Cid(), nil
}

// ImportReader imports one file's bytes and returns its root CID once every
// block is durably stored.
func (im *Importer) ImportReader(ctx context.Context, r io.Reader) (cid.Cid, error) {
	nd, err := im.file(ctx, r)
	if err != nil {
		return cid.Undef, err
	}
	if err := im.ds.flush(ctx); err != nil {
		return cid.Undef, err
	}
	return nd.Cid(), nil
}

func (im *Importer) fileAt(ctx context.Context, path string) (ipld.Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("importing: %w", err)
	}
	defer f.Close()
	nd, err := im.file(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", path, err)
	}
	return nd, nil
}

// countReader counts the bytes read from r, and ends the read with ctx's
// error once ctx ends: the chunker and the DAG layout read a file to its
// end without a context of their own.
type countReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (c *countReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (im *Importer) file(ctx context.Context, r io.Reader) (ipld.Node, error) {
	cr := &countReader{ctx: ctx, r: r}
	params := helpers.DagBuilderParams{
		Dagserv:    im.ds,
		Maxlinks:   node.MaxLinks,
		RawLeaves:  true,
		CidBuilder: im.prefix,
	}
	db, err := params.New(chunker.NewSizeSplitter(cr, node.ChunkSize))
	if err != nil {
		return nil, err
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	im.stats.Files++
	im.stats.Bytes += cr.n
	if im.opts.Progress != nil {
		im.opts.Progress(im.stats.Files, im.stats.Bytes)
	}
	return nd, nil
}

type dirID struct{ dev, ino uint64 }

func idOf(fi os.FileInfo) (dirID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return dirID{}, false
	}
	return dirID{uint64(st.Dev), uint64(st.Ino)}, true
}

// dir imports a directory. stack holds the directories on the current path,
// to detect symlink loops.
func (im *Importer) dir(ctx context.Context, path string, fi os.FileInfo, stack []dirID) (ipld.Node, error) {
	if id, ok := idOf(fi); ok {
		for _, s := range stack {
			if s == id {
				return nil, fmt.Errorf("importing %s: %w", path, ErrSymlinkLoop)
			}
		}
		stack = append(stack, id)
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("importing: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	d, err := uio.NewDirectory(im.ds, uio.WithCidBuilder(im.prefix))
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := filepath.Join(path, e.Name())
		cfi, err := os.Stat(p) // follows symlinks
		if err != nil {
			if target, lerr := os.Readlink(p); lerr == nil {
				return nil, fmt.Errorf("importing %s: symlink to %s: %w", p, target, err)
			}
			return nil, fmt.Errorf("importing: %w", err)
		}
		var child ipld.Node
		switch {
		case cfi.IsDir():
			child, err = im.dir(ctx, p, cfi, stack)
		case cfi.Mode().IsRegular():
			child, err = im.fileAt(ctx, p)
		default:
			err = fmt.Errorf("importing %s: not a regular file or directory (%s)", p, cfi.Mode().Type())
		}
		if err != nil {
			return nil, err
		}
		if err := d.AddChild(ctx, e.Name(), child); err != nil {
			return nil, fmt.Errorf("importing %s: %w", p, err)
		}
	}
	nd, err := d.GetNode()
	if err != nil {
		return nil, err
	}
	if err := im.ds.Add(ctx, nd); err != nil {
		return nil, err
	}
	im.stats.Dirs++
	return nd, nil
}

// batchDAG is an ipld.DAGService over a node.Blockstore that writes blocks
// in durable batches (node.BatchWriter); blocks not yet written are read
// from memory.
type batchDAG struct {
	w *node.BatchWriter
}

var _ ipld.DAGService = (*batchDAG)(nil)

func (b *batchDAG) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	raw, err := b.w.Get(ctx, c)
	if err != nil {
		if errors.Is(err, node.ErrNotFound) {
			return nil, ipld.ErrNotFound{Cid: c}
		}
		return nil, err
	}
	return ipld.Decode(blockOf{c, raw}, decodeNode)
}

func (b *batchDAG) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	for _, c := range cs {
		nd, err := b.Get(ctx, c)
		out <- &ipld.NodeOption{Node: nd, Err: err}
	}
	close(out)
	return out
}

func (b *batchDAG) Add(ctx context.Context, nd ipld.Node) error {
	raw := nd.RawData()
	if len(raw) > node.MaxBlockLen {
		return fmt.Errorf("block %s: %d bytes: %w", nd.Cid(), len(raw), node.ErrTooLarge)
	}
	if err := b.w.Put(ctx, node.Block{Cid: nd.Cid(), Data: raw}); err != nil {
		return fmt.Errorf("writing blocks: %w", err)
	}
	return nil
}

func (b *batchDAG) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		if err := b.Add(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

func (b *batchDAG) Remove(context.Context, cid.Cid) error { return nil }

func (b *batchDAG) RemoveMany(context.Context, []cid.Cid) error { return nil }

func (b *batchDAG) flush(ctx context.Context) error {
	if err := b.w.Flush(ctx); err != nil {
		return fmt.Errorf("writing blocks: %w", err)
	}
	return nil
}
