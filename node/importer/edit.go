package importer

import (
	"context"
	"errors"
	"fmt"
	"os"

	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	cid "github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// DirEdit changes one directory incrementally: entries are added, replaced
// or removed by CID, and Finish re-encodes only this directory (switching
// between basic and HAMT-sharded forms as Kubo does); the entries' sub-DAGs
// are reused as they are, never rehashed.
type DirEdit struct {
	im  *Importer
	dir uio.Directory
}

// EditDir starts editing the directory c, which must be in the store (or
// written by this Importer). A zero c starts an empty directory.
func (im *Importer) EditDir(ctx context.Context, c cid.Cid) (*DirEdit, error) {
	if !c.Defined() {
		d, err := uio.NewDirectory(im.ds, uio.WithCidBuilder(im.prefix))
		if err != nil {
			return nil, err
		}
		return &DirEdit{im: im, dir: d}, nil
	}
	nd, err := im.ds.Get(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("editing directory %s: %w", c, err)
	}
	d, err := uio.NewDirectoryFromNode(im.ds, nd)
	if err != nil {
		return nil, fmt.Errorf("editing directory %s: %w", c, err)
	}
	d.SetCidBuilder(im.prefix)
	return &DirEdit{im: im, dir: d}, nil
}

// Set makes name point at the DAG rooted at child (in the store or written
// by this Importer), replacing any entry of that name.
func (e *DirEdit) Set(ctx context.Context, name string, child cid.Cid) error {
	nd, err := e.im.ds.Get(ctx, child)
	if err != nil {
		return fmt.Errorf("adding %q: %w", name, err)
	}
	if err := e.dir.AddChild(ctx, name, nd); err != nil {
		return fmt.Errorf("adding %q: %w", name, err)
	}
	return nil
}

// Remove deletes the entry name; removing an absent name is not an error.
func (e *DirEdit) Remove(ctx context.Context, name string) error {
	err := e.dir.RemoveChild(ctx, name)
	if err != nil && !errors.Is(err, os.ErrNotExist) && !ipld.IsNotFound(err) {
		return fmt.Errorf("removing %q: %w", name, err)
	}
	return nil
}

// Finish encodes the directory, stores its blocks durably and returns its CID.
func (e *DirEdit) Finish(ctx context.Context) (cid.Cid, error) {
	nd, err := e.dir.GetNode()
	if err != nil {
		return cid.Undef, err
	}
	if err := e.im.ds.Add(ctx, nd); err != nil {
		return cid.Undef, err
	}
	if err := e.im.ds.flush(ctx); err != nil {
		return cid.Undef, err
	}
	e.im.stats.Dirs++
	return nd.Cid(), nil
}
