package fuse

// Writable mounts.
//
// Changes live in an overlay until they are built: a file being written
// keeps its bytes in a scratch file, and each directory records which
// entries changed since the last build. After QuietPeriod without changes,
// or at once on fsync, the mount builds a new root incrementally — only
// changed files are imported and only directories on a changed path are
// re-encoded (importer.DirEdit); everything else keeps its CID — stores it,
// calls Options.Commit, and deletes the blocks of the root it superseded
// that no kept root references. So a burst of writes makes one root, not
// one per write, and intermediate roots do not pile up on disk.
//
// Permission bits set by chmod are kept in the overlay only: the DAG holds
// Kubo-compatible UnixFS without mode metadata, so CIDs stay the ones IPFS
// tools compute.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/importer"
)

// change is one entry of a directory's overlay: deleted, or pointing at a
// file being written, a directory with changes, or an existing DAG (moved in).
type change struct {
	del  bool
	file *fileNode
	dir  *dirNode
	c    cid.Cid
}

type writer struct {
	f *FS

	mu       sync.Mutex
	pending  bool    // changes not yet built
	lastRoot cid.Cid // the last root this mount built (for GC)
	kick     chan struct{}
	build    chan chan error
	done     chan struct{}
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

func newWriter(f *FS) (*writer, error) {
	o := &f.opts
	if o.Store == nil || o.ScratchDir == "" || o.Commit == nil {
		return nil, errors.New("mounting writable: Store, ScratchDir and Commit are required")
	}
	if err := os.MkdirAll(o.ScratchDir, 0o700); err != nil {
		return nil, fmt.Errorf("mounting writable: %w", err)
	}
	if o.QuietPeriod == 0 {
		o.QuietPeriod = 2 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &writer{f: f, lastRoot: o.Root, kick: make(chan struct{}, 1), build: make(chan chan error), done: make(chan struct{}), ctx: ctx, cancel: cancel}, nil
}

func (w *writer) start() {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.loop()
	}()
}

// loop builds after a quiet period, or at once when asked (fsync).
func (w *writer) loop() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-w.done:
			timer.Stop()
			return
		case <-w.kick:
			timer.Reset(w.f.opts.QuietPeriod)
		case <-timer.C:
			if err := w.buildAndCommit(w.ctx); err != nil {
				slog.Warn("building new root failed", "err", err)
			}
		case reply := <-w.build:
			timer.Stop()
			reply <- w.buildAndCommit(w.ctx)
		}
	}
}

// stop builds what is pending and stops the loop.
func (w *writer) stop() error {
	err := w.buildNow()
	close(w.done)
	w.wg.Wait()
	w.cancel()
	return err
}

func (w *writer) buildNow() error {
	reply := make(chan error, 1)
	select {
	case w.build <- reply:
		return <-reply
	case <-w.done:
		return errors.New("mount closed")
	}
}

// clean reports whether no change is waiting to be built.
func (w *writer) clean() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.pending
}

// touched records a change under d's entry name and marks d and every
// ancestor dirty. Caller holds w.mu.
func (w *writer) touched(d *dirNode, name string, ch *change) {
	if d.changes == nil {
		d.changes = make(map[string]*change)
	}
	d.changes[name] = ch
	w.markDirty(d)
}

func (w *writer) markDirty(d *dirNode) {
	w.pending = true
	for cur := d; cur != nil && !cur.isRoot; {
		cur.dirty = true
		name, parent := cur.Parent()
		if parent == nil {
			break
		}
		pd, ok := parent.Operations().(*dirNode)
		if !ok {
			break
		}
		if pd.changes == nil {
			pd.changes = make(map[string]*change)
		}
		pd.changes[name] = &change{dir: cur}
		cur = pd
	}
	w.f.root.dirty = true
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (d *dirNode) snapshotChanges() map[string]*change {
	w := d.fsys.w
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]*change, len(d.changes))
	for k, v := range d.changes {
		out[k] = v
	}
	return out
}

func (d *dirNode) lookupChange(ctx context.Context, ch *change, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	switch {
	case ch.del:
		return nil, syscall.ENOENT
	case ch.dir != nil:
		out.Mode = fuse.S_IFDIR | 0o755
		out.Nlink = 2
		return ch.dir.EmbeddedInode(), 0
	case ch.file != nil:
		d.fsys.w.mu.Lock()
		ch.file.attr(&out.Attr)
		d.fsys.w.mu.Unlock()
		return ch.file.EmbeddedInode(), 0
	}
	n, _, err := node.GetNode(ctx, d.fsys.opts.Getter, ch.c)
	if err != nil {
		return nil, errno(err)
	}
	return d.child(ctx, n, out), 0
}

// exists reports whether name is an entry of d (overlay first, then DAG).
func (d *dirNode) exists(ctx context.Context, name string) (bool, error) {
	if ch, ok := d.snapshotChanges()[name]; ok {
		return !ch.del, nil
	}
	n, err := d.dir(ctx)
	if err != nil || n == emptyDir {
		return false, err
	}
	_, err = node.Lookup(ctx, d.fsys.opts.Getter, n, name)
	if errors.Is(err, node.ErrNoSuchPath) {
		return false, nil
	}
	return err == nil, err
}

func checkEntryName(name string) syscall.Errno {
	if len(name) > 255 {
		return syscall.ENAMETOOLONG
	}
	if !validUTF8(name) {
		return syscall.EINVAL
	}
	return 0
}

func validUTF8(s string) bool {
	for _, r := range s {
		if r == '\uFFFD' {
			return false
		}
	}
	return true
}

func (w *writer) newScratch() (*os.File, error) {
	return os.CreateTemp(w.f.opts.ScratchDir, "write-*")
}

var (
	_ fs.NodeCreater   = (*dirNode)(nil)
	_ fs.NodeMkdirer   = (*dirNode)(nil)
	_ fs.NodeUnlinker  = (*dirNode)(nil)
	_ fs.NodeRmdirer   = (*dirNode)(nil)
	_ fs.NodeRenamer   = (*dirNode)(nil)
	_ fs.NodeWriter    = (*fileNode)(nil)
	_ fs.NodeSetattrer = (*fileNode)(nil)
	_ fs.NodeFsyncer   = (*fileNode)(nil)
	_ fs.NodeReleaser  = (*fileNode)(nil)
	_ fs.NodeFsyncer   = (*dirNode)(nil)
)

// Create makes a new, empty regular file.
func (d *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	w := d.fsys.w
	if w == nil {
		return nil, nil, 0, syscall.EROFS
	}
	if e := checkEntryName(name); e != 0 {
		return nil, nil, 0, e
	}
	if ok, err := d.exists(ctx, name); err != nil {
		return nil, nil, 0, errno(err)
	} else if ok && flags&syscall.O_EXCL != 0 {
		return nil, nil, 0, syscall.EEXIST
	}
	sc, err := w.newScratch()
	if err != nil {
		return nil, nil, 0, syscall.EIO
	}
	fn := &fileNode{fsys: d.fsys, mode: mode & 0o777, scratch: sc, writers: 1, dirty: true}
	inode := d.NewInode(ctx, fn, fs.StableAttr{Mode: fuse.S_IFREG})
	w.mu.Lock()
	w.touched(d, name, &change{file: fn})
	fn.attr(&out.Attr)
	w.mu.Unlock()
	return inode, nil, fuse.FOPEN_DIRECT_IO, 0
}

// Mkdir makes a new, empty directory.
func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	w := d.fsys.w
	if w == nil {
		return nil, syscall.EROFS
	}
	if e := checkEntryName(name); e != 0 {
		return nil, e
	}
	if ok, err := d.exists(ctx, name); err != nil {
		return nil, errno(err)
	} else if ok {
		return nil, syscall.EEXIST
	}
	nd := &dirNode{fsys: d.fsys, dirty: true}
	inode := d.NewInode(ctx, nd, fs.StableAttr{Mode: fuse.S_IFDIR})
	w.mu.Lock()
	w.touched(d, name, &change{dir: nd})
	w.mu.Unlock()
	out.Mode = fuse.S_IFDIR | 0o755
	out.Nlink = 2
	return inode, 0
}

// Unlink removes a file.
func (d *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	w := d.fsys.w
	if w == nil {
		return syscall.EROFS
	}
	if ok, err := d.exists(ctx, name); err != nil {
		return errno(err)
	} else if !ok {
		return syscall.ENOENT
	}
	w.mu.Lock()
	if ch := d.changes[name]; ch != nil && ch.file != nil && ch.file.writers == 0 && ch.file.scratch != nil {
		ch.file.dropScratch()
	}
	w.touched(d, name, &change{del: true})
	w.mu.Unlock()
	return 0
}

// Rmdir removes an empty directory.
func (d *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	w := d.fsys.w
	if w == nil {
		return syscall.EROFS
	}
	ch := &fuse.EntryOut{}
	in, e := d.Lookup(ctx, name, ch)
	if e != 0 {
		return e
	}
	sub, ok := in.Operations().(*dirNode)
	if !ok {
		return syscall.ENOTDIR
	}
	ds, e := sub.Readdir(ctx)
	if e != 0 {
		return e
	}
	if ds.HasNext() {
		return syscall.ENOTEMPTY
	}
	w.mu.Lock()
	w.touched(d, name, &change{del: true})
	w.mu.Unlock()
	return 0
}

// Rename moves an entry, atomically: both directories change under one lock
// and are built into the same root.
func (d *dirNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	w := d.fsys.w
	if w == nil {
		return syscall.EROFS
	}
	if e := checkEntryName(newName); e != 0 {
		return e
	}
	dst, ok := newParent.(*dirNode)
	if !ok {
		return syscall.EXDEV
	}
	if flags&fs.RENAME_EXCHANGE != 0 {
		return syscall.ENOTSUP
	}
	// What name points at now.
	var moved *change
	if ch, ok := d.snapshotChanges()[name]; ok {
		if ch.del {
			return syscall.ENOENT
		}
		moved = ch
	} else {
		n, err := d.dir(ctx)
		if err != nil {
			return errno(err)
		}
		if n == emptyDir {
			return syscall.ENOENT
		}
		l, err := node.Lookup(ctx, d.fsys.opts.Getter, n, name)
		if err != nil {
			return errno(err)
		}
		moved = &change{c: l.Cid}
		// A directory already looked up keeps its inode (and its changes).
		if child := d.GetChild(name); child != nil {
			if cd, ok := child.Operations().(*dirNode); ok {
				moved = &change{dir: cd}
			} else if cf, ok := child.Operations().(*fileNode); ok && cf.scratch != nil {
				moved = &change{file: cf}
			}
		}
	}
	if flags&renameNoReplace != 0 {
		if ok, err := dst.exists(ctx, newName); err != nil {
			return errno(err)
		} else if ok {
			return syscall.EEXIST
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.touched(d, name, &change{del: true})
	w.touched(dst, newName, moved)
	if moved.dir != nil {
		w.markDirty(moved.dir)
	}
	return 0
}

func (d *dirNode) Fsync(ctx context.Context, _ fs.FileHandle, _ uint32) syscall.Errno {
	if d.fsys.w == nil {
		return 0
	}
	if err := d.fsys.w.buildNow(); err != nil {
		return syscall.EIO
	}
	return 0
}

// openForWrite moves a file into the overlay: its current bytes (unless
// truncated) are copied into a scratch file.
func (w *writer) openForWrite(ctx context.Context, f *fileNode, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if f.scratch == nil {
		sc, err := w.newScratch()
		if err != nil {
			return nil, 0, syscall.EIO
		}
		if f.n != nil && flags&syscall.O_TRUNC == 0 && f.n.FileSize > 0 {
			n := f.n
			if n.Kind == node.KindRaw && n.Data == nil {
				full, _, err := node.GetNode(ctx, w.f.opts.Getter, n.Cid)
				if err != nil {
					sc.Close()
					os.Remove(sc.Name())
					return nil, 0, errno(err)
				}
				n = full
			}
			if err := node.WriteFile(ctx, w.f.opts.Getter, n, 0, n.FileSize, sc); err != nil {
				sc.Close()
				os.Remove(sc.Name())
				return nil, 0, errno(err)
			}
		}
		st, err := sc.Stat()
		if err != nil {
			return nil, 0, syscall.EIO
		}
		f.scratch, f.size = sc, st.Size()
	}
	if flags&syscall.O_TRUNC != 0 {
		if err := f.scratch.Truncate(0); err != nil {
			return nil, 0, syscall.EIO
		}
		f.size = 0
		f.dirty = true
	}
	f.writers++
	if f.dirty {
		w.fileChanged(f)
	}
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

// fileChanged records that f's bytes changed. Caller holds w.mu.
func (w *writer) fileChanged(f *fileNode) {
	f.dirty = true
	name, parent := f.Parent()
	if parent == nil {
		return
	}
	if pd, ok := parent.Operations().(*dirNode); ok {
		w.touched(pd, name, &change{file: f})
	}
}

func (f *fileNode) Write(ctx context.Context, _ fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	w := f.fsys.w
	if w == nil {
		return 0, syscall.EROFS
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if f.scratch == nil {
		return 0, syscall.EBADF
	}
	n, err := f.scratch.WriteAt(data, off)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return uint32(n), syscall.ENOSPC
		}
		return uint32(n), syscall.EIO
	}
	if end := off + int64(n); end > f.size {
		f.size = end
	}
	w.fileChanged(f)
	return uint32(n), 0
}

func (f *fileNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	w := f.fsys.w
	if w == nil {
		return syscall.EROFS
	}
	if sz, ok := in.GetSize(); ok {
		if _, _, e := w.openForWrite(ctx, f, 0); e != 0 {
			return e
		}
		w.mu.Lock()
		f.writers--
		if err := f.scratch.Truncate(int64(sz)); err != nil {
			w.mu.Unlock()
			return syscall.EIO
		}
		f.size = int64(sz)
		w.fileChanged(f)
		w.mu.Unlock()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if m, ok := in.GetMode(); ok {
		f.mode = m & 0o777
	}
	f.attr(&out.Attr)
	return 0
}

func (f *fileNode) Fsync(ctx context.Context, _ fs.FileHandle, _ uint32) syscall.Errno {
	w := f.fsys.w
	if w == nil {
		return 0
	}
	if err := w.buildNow(); err != nil {
		return syscall.EIO
	}
	return 0
}

func (f *fileNode) Release(ctx context.Context, _ fs.FileHandle) syscall.Errno {
	w := f.fsys.w
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if f.writers > 0 {
		f.writers--
	}
	return 0
}

// dropScratch forgets the scratch file. Caller holds w.mu.
func (f *fileNode) dropScratch() {
	if f.scratch != nil {
		name := f.scratch.Name()
		f.scratch.Close()
		os.Remove(name)
		f.scratch = nil
		f.size = 0
	}
}

// buildAndCommit builds the pending changes into a new root, stores it,
// commits it and collects the garbage of the root it replaces.
func (w *writer) buildAndCommit(ctx context.Context) error {
	w.mu.Lock()
	if !w.pending {
		w.mu.Unlock()
		return nil
	}
	im := importer.New(w.f.opts.Store, importer.Options{})
	root, err := w.buildDir(ctx, im, w.f.root)
	if err != nil {
		w.mu.Unlock()
		return err
	}
	w.pending = false
	prev := w.lastRoot
	w.lastRoot = root
	w.f.mu.Lock()
	w.f.rootCID = root
	w.f.mu.Unlock()
	w.mu.Unlock()

	if err := w.f.opts.Commit(ctx, root); err != nil {
		return fmt.Errorf("committing %s: %w", root, err)
	}
	if prev.Defined() && !prev.Equals(root) {
		keep := []cid.Cid{root}
		if w.f.opts.Keep != nil {
			keep = append(keep, w.f.opts.Keep()...)
		}
		if err := collect(ctx, w.f.opts.Store, prev, keep); err != nil {
			return fmt.Errorf("collecting garbage of %s: %w", prev, err)
		}
	}
	return nil
}

// buildDir re-encodes d with its changes applied and returns its CID.
// Caller holds w.mu.
func (w *writer) buildDir(ctx context.Context, im *importer.Importer, d *dirNode) (cid.Cid, error) {
	if !d.dirty {
		return d.cid(), nil
	}
	ed, err := im.EditDir(ctx, d.cid())
	if err != nil {
		return cid.Undef, err
	}
	for name, ch := range d.changes {
		switch {
		case ch.del:
			err = ed.Remove(ctx, name)
		case ch.dir != nil:
			var c cid.Cid
			if c, err = w.buildDir(ctx, im, ch.dir); err == nil {
				err = ed.Set(ctx, name, c)
			}
		case ch.file != nil:
			var c cid.Cid
			if c, err = w.buildFile(ctx, im, ch.file); err == nil {
				err = ed.Set(ctx, name, c)
			}
		default:
			err = ed.Set(ctx, name, ch.c)
		}
		if err != nil {
			return cid.Undef, fmt.Errorf("building %q: %w", name, err)
		}
	}
	c, err := ed.Finish(ctx)
	if err != nil {
		return cid.Undef, err
	}
	// The overlay is now in the DAG; keep only files still being written.
	for name, ch := range d.changes {
		if ch.file != nil && ch.file.writers > 0 {
			continue
		}
		delete(d.changes, name)
	}
	d.dirty = false
	if !d.isRoot {
		d.c = c
	}
	return c, nil
}

// buildFile imports a file's scratch bytes. Caller holds w.mu.
func (w *writer) buildFile(ctx context.Context, im *importer.Importer, f *fileNode) (cid.Cid, error) {
	if !f.dirty && f.n != nil {
		return f.n.Cid, nil
	}
	c, err := im.ImportReader(ctx, io.NewSectionReader(f.scratch, 0, f.size))
	if err != nil {
		return cid.Undef, err
	}
	n, _, err := node.GetNode(ctx, w.f.opts.Store, c)
	if err != nil {
		return cid.Undef, err
	}
	f.n = n
	f.dirty = false
	if f.writers == 0 {
		f.dropScratch()
	}
	return c, nil
}

// renameNoReplace is renameat2's RENAME_NOREPLACE (linux/fs.h).
const renameNoReplace = 0x1
