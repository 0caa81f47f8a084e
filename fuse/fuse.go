// Package fuse shows a site's DAG as a FUSE filesystem (go-fuse v2).
//
// The mount is read-only: the tree of the current root, with listings and
// stat answered from the DAG's interior blocks (file contents are fetched
// only when read). Every block comes through a node.Getter; pair it with
// NewFetchingGetter to read lazily from the swarm, verified, keeping what was
// fetched. SetRoot swaps in a new root and invalidates the kernel's caches so
// the new tree shows at once, while files already open keep reading the
// version they opened.
package fuse

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// Options configure Mount.
type Options struct {
	// Getter supplies blocks (required).
	Getter node.Getter
	// Root is the DAG to show first (required).
	Root cid.Cid
	// ReadTimeout bounds one read or lookup, including fetching missing
	// blocks; past it the call fails with EIO instead of hanging. 0 means 30 s.
	ReadTimeout time.Duration
	// Name is shown as the mount's source in /proc/mounts; "" means "hearth".
	Name string
	// Debug logs every FUSE request (go-fuse's debug output).
	Debug bool

	// Writable makes the mount read-write (see the package doc of write.go's
	// section). Store, ScratchDir and Commit are then required.
	Writable bool
	// Store receives the blocks of new roots; its metadata (pins, root
	// records) says what the mount's garbage collection must keep.
	Store node.GCStore
	// ScratchDir holds the bytes of files being written until they are
	// imported; it must be on a disk with room for them.
	ScratchDir string
	// QuietPeriod is how long the mount waits after the last change before
	// it builds a new root; 0 means 2 s. An fsync builds at once.
	QuietPeriod time.Duration
	// Commit is called with each new root, once all its blocks are stored:
	// typically sign the next root record and publish it. An error is
	// logged and the root is offered again with the next change.
	Commit func(ctx context.Context, root cid.Cid) error
	// Keep returns roots whose blocks must survive garbage collection (pins)
	// besides the newest root; may be nil.
	Keep func() []cid.Cid
}

// FS is a mounted filesystem.
type FS struct {
	opts   Options
	server *fuse.Server
	root   *dirNode

	mu      sync.RWMutex
	rootCID cid.Cid

	w *writer // nil when read-only

	// stopping ends when Unmount starts, and with it every read, lookup
	// and listing in flight, so none holds the mount busy.
	stopping context.Context
	stop     context.CancelFunc
}

// Mount mounts the DAG at dir and serves it until Unmount. dir must be an
// existing, empty directory not already a mount point.
func Mount(dir string, opts Options) (*FS, error) {
	if opts.Getter == nil || !opts.Root.Defined() {
		return nil, errors.New("mounting: Getter and Root are required")
	}
	if err := checkMountPoint(dir); err != nil {
		return nil, err
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 30 * time.Second
	}
	if opts.Name == "" {
		opts.Name = "hearth"
	}
	f := &FS{opts: opts, rootCID: opts.Root}
	f.stopping, f.stop = context.WithCancel(context.Background())
	f.root = &dirNode{fsys: f, isRoot: true}
	var mountOpts []string
	if opts.Writable {
		w, err := newWriter(f)
		if err != nil {
			return nil, err
		}
		f.w = w
	} else {
		mountOpts = append(mountOpts, "ro")
	}
	// Entries and attributes are immutable per inode (content-addressed), so
	// the kernel may cache them; SetRoot invalidates what changes.
	timeout := time.Hour
	srv, err := fs.Mount(dir, f.root, &fs.Options{
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
		MountOptions: fuse.MountOptions{
			FsName:        opts.Name,
			Name:          "hearth",
			Debug:         opts.Debug,
			DisableXAttrs: true,
			MaxReadAhead:  1 << 20,
			MaxWrite:      1 << 20, // also the largest read the kernel sends
			Options:       mountOpts,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("mounting %s: %w", dir, err)
	}
	f.server = srv
	if f.w != nil {
		f.w.start()
	}
	return f, nil
}

// ErrMountPointInUse: the directory is already a mount point.
var ErrMountPointInUse = errors.New("mount point in use")

// checkMountPoint refuses a directory that is missing, not a directory, or
// already a mount point (its device differs from its parent's).
func checkMountPoint(dir string) error {
	var st, pst syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return fmt.Errorf("mounting %s: %w", dir, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return fmt.Errorf("mounting %s: %w", dir, syscall.ENOTDIR)
	}
	if err := syscall.Stat(filepath.Join(dir, ".."), &pst); err != nil {
		return fmt.Errorf("mounting %s: %w", dir, err)
	}
	if st.Dev != pst.Dev || st.Ino == pst.Ino {
		return fmt.Errorf("mounting %s: %w", dir, ErrMountPointInUse)
	}
	return nil
}

// Root returns the root CID being shown.
func (f *FS) Root() cid.Cid {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.rootCID
}

// SetRoot shows a new root. Directory entries the kernel cached are
// invalidated; open files keep their version.
func (f *FS) SetRoot(c cid.Cid) {
	if f.w != nil && !f.w.clean() {
		// Local edits are pending: they will be built on the current root
		// and published as the next sequence; the newer local root wins.
		return
	}
	f.mu.Lock()
	old := f.rootCID
	f.rootCID = c
	f.mu.Unlock()
	if old.Equals(c) {
		return
	}
	for name := range f.root.Children() {
		f.root.RmChild(name)
		_ = f.root.NotifyEntry(name)
	}
	_ = f.root.NotifyContent(0, 0)
}

// Unmount ends the reads, lookups and listings in flight (EINTR), builds
// and commits pending changes (writable mounts), then unmounts and waits
// for the server to stop.
func (f *FS) Unmount() error {
	f.stop()
	var cerr error
	if f.w != nil {
		cerr = f.w.stop()
	}
	if err := f.server.Unmount(); err != nil {
		return fmt.Errorf("unmounting: %w", err)
	}
	f.server.Wait()
	return cerr
}

// Wait blocks until the filesystem is unmounted (for example by fusermount -u).
func (f *FS) Wait() { f.server.Wait() }

// ctx bounds one operation: parent (the kernel's request), at most
// ReadTimeout, and no longer than until Unmount starts.
func (f *FS) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(parent, f.opts.ReadTimeout)
	unhook := context.AfterFunc(f.stopping, cancel)
	return ctx, func() {
		unhook()
		cancel()
	}
}

// errno is errno(err), but for an operation Unmount ended: EIO, not
// EINTR, which callers such as Go's os package retry without end.
func (f *FS) errno(err error) syscall.Errno {
	if err != nil && f.stopping.Err() != nil {
		return syscall.EIO
	}
	return errno(err)
}

// errno maps errors to what the kernel is told.
func errno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, node.ErrNoSuchPath):
		return syscall.ENOENT
	case errors.Is(err, node.ErrNotDir):
		return syscall.ENOTDIR
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	}
	// Missing blocks that could not be fetched in time, corrupt blocks,
	// malformed nodes: the data cannot be read.
	return syscall.EIO
}

func (f *FS) dirPerm() uint32 {
	if f.w != nil {
		return 0o755
	}
	return 0o555
}

func (f *FS) filePerm() uint32 {
	if f.w != nil {
		return 0o644
	}
	return 0o444
}

func inoOf(c cid.Cid) uint64 {
	h := fnv.New64a()
	h.Write(c.Bytes())
	return h.Sum64() | 1
}

// dirNode is a directory (basic or HAMT-sharded).
type dirNode struct {
	fs.Inode
	fsys   *FS
	isRoot bool
	c      cid.Cid // undefined for a directory made since the last build

	// Writable mounts only, guarded by fsys.w.mu: entries changed since the
	// last build, by name, and whether this directory must be rebuilt.
	changes map[string]*change
	dirty   bool
}

var (
	_ fs.NodeLookuper  = (*dirNode)(nil)
	_ fs.NodeReaddirer = (*dirNode)(nil)
	_ fs.NodeGetattrer = (*dirNode)(nil)
)

func (d *dirNode) cid() cid.Cid {
	if d.isRoot {
		return d.fsys.Root()
	}
	return d.c
}

// emptyDir stands for a directory made since the last build.
var emptyDir = &node.Node{Kind: node.KindDirectory}

func (d *dirNode) dir(ctx context.Context) (*node.Node, error) {
	if !d.cid().Defined() {
		return emptyDir, nil
	}
	n, _, err := node.GetNode(ctx, d.fsys.opts.Getter, d.cid())
	if err != nil {
		return nil, err
	}
	if !n.IsDir() {
		return nil, fmt.Errorf("%s is a %s: %w", d.cid(), n.Kind, node.ErrNotDir)
	}
	return n, nil
}

func (d *dirNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = fuse.S_IFDIR | d.fsys.dirPerm()
	out.Nlink = 2
	return 0
}

// Lookup resolves one name. A child's kind and size come from its parent's
// link and its own root block; file contents are not read.
func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ctx, cancel := d.fsys.ctx(ctx)
	defer cancel()
	if w := d.fsys.w; w != nil {
		w.mu.Lock()
		ch, ok := d.changes[name]
		w.mu.Unlock()
		if ok {
			return d.lookupChange(ctx, ch, out)
		}
	}
	dir, err := d.dir(ctx)
	if err != nil {
		return nil, d.fsys.errno(err)
	}
	l, err := node.Lookup(ctx, d.fsys.opts.Getter, dir, name)
	if err != nil {
		return nil, d.fsys.errno(err)
	}
	if l.Cid.Type() == node.CodecRaw {
		// A raw leaf is the whole file: its size is the link's Tsize, and
		// its bytes are fetched only when read.
		n := &node.Node{Cid: l.Cid, Kind: node.KindRaw, FileSize: l.Tsize}
		return d.child(ctx, n, out), 0
	}
	n, _, err := node.GetNode(ctx, d.fsys.opts.Getter, l.Cid)
	if err != nil {
		return nil, d.fsys.errno(err)
	}
	return d.child(ctx, n, out), 0
}

func (d *dirNode) child(ctx context.Context, n *node.Node, out *fuse.EntryOut) *fs.Inode {
	switch {
	case n.IsDir():
		out.Mode = fuse.S_IFDIR | d.fsys.dirPerm()
		out.Nlink = 2
		return d.NewInode(ctx, &dirNode{fsys: d.fsys, c: n.Cid}, fs.StableAttr{Mode: fuse.S_IFDIR})
	case n.Kind == node.KindSymlink:
		out.Mode = fuse.S_IFLNK | 0o777
		out.Size = uint64(len(n.Data))
		return d.NewInode(ctx, &linkNode{target: n.Data}, fs.StableAttr{Mode: fuse.S_IFLNK})
	default:
		fn := &fileNode{fsys: d.fsys, n: n, mode: d.fsys.filePerm()}
		fn.attr(&out.Attr)
		var ino uint64
		if d.fsys.w == nil {
			ino = inoOf(n.Cid) // read-only: identical files may share an inode
		}
		return d.NewInode(ctx, fn, fs.StableAttr{Mode: fuse.S_IFREG, Ino: ino})
	}
}

func (d *dirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	ctx, cancel := d.fsys.ctx(ctx)
	defer cancel()
	n, err := d.dir(ctx)
	if err != nil {
		return nil, d.fsys.errno(err)
	}
	var out []fuse.DirEntry
	changed := d.snapshotChanges()
	if n != emptyDir {
		for e, err := range node.Entries(ctx, d.fsys.opts.Getter, n) {
			if err != nil {
				return nil, d.fsys.errno(err)
			}
			if _, ok := changed[e.Name]; ok {
				continue
			}
			out = append(out, fuse.DirEntry{Name: e.Name, Mode: d.kindOf(ctx, e.Cid)})
		}
	}
	for name, ch := range changed {
		switch {
		case ch.del:
		case ch.dir != nil:
			out = append(out, fuse.DirEntry{Name: name, Mode: fuse.S_IFDIR})
		case ch.file != nil:
			out = append(out, fuse.DirEntry{Name: name, Mode: fuse.S_IFREG})
		default:
			out = append(out, fuse.DirEntry{Name: name, Mode: d.kindOf(ctx, ch.c)})
		}
	}
	return fs.NewListDirStream(out), 0
}

// kindOf returns the file type of the DAG at c, reading only its root block
// when it is dag-pb (metadata, not content).
func (d *dirNode) kindOf(ctx context.Context, c cid.Cid) uint32 {
	if c.Type() != node.CodecDagPB {
		return fuse.S_IFREG
	}
	cn, _, err := node.GetNode(ctx, d.fsys.opts.Getter, c)
	if err != nil {
		return fuse.S_IFREG
	}
	switch {
	case cn.IsDir():
		return fuse.S_IFDIR
	case cn.Kind == node.KindSymlink:
		return fuse.S_IFLNK
	}
	return fuse.S_IFREG
}

// fileNode is a regular file: a raw leaf or a UnixFS file DAG.
type fileNode struct {
	fs.Inode
	fsys *FS
	n    *node.Node // the committed version; nil for a file made since the last build

	// Writable mounts only, guarded by fsys.w.mu.
	mode    uint32   // permission bits
	scratch *os.File // the bytes being written, when the file is being edited
	size    int64    // length of scratch
	writers int      // open handles that may write
	dirty   bool     // scratch differs from n

	rmu    sync.Mutex
	recent recentBlocks // the blocks the last reads of n walked
}

var (
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
)

func (f *fileNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if w := f.fsys.w; w != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
	}
	f.attr(&out.Attr)
	return 0
}

// attr fills a's mode, size and link count (caller holds w.mu if writable).
func (f *fileNode) attr(a *fuse.Attr) {
	size := uint64(0)
	if f.scratch != nil {
		size = uint64(f.size)
	} else if f.n != nil {
		size = f.n.FileSize
	}
	a.Mode = fuse.S_IFREG | f.mode
	a.Size = size
	a.Blocks = (size + 511) / 512
	a.Nlink = 1
}

func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		if f.fsys.w == nil {
			return nil, 0, syscall.EROFS
		}
		return f.fsys.w.openForWrite(ctx, f, flags)
	}
	if w := f.fsys.w; w != nil {
		w.mu.Lock()
		editing := f.scratch != nil
		w.mu.Unlock()
		if editing {
			return nil, fuse.FOPEN_DIRECT_IO, 0
		}
	}
	// Contents never change under an inode: let the kernel keep its cache.
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (f *fileNode) Read(ctx context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off < 0 {
		return nil, syscall.EINVAL
	}
	if w := f.fsys.w; w != nil {
		w.mu.Lock()
		sc := f.scratch
		w.mu.Unlock()
		if sc != nil {
			n, err := sc.ReadAt(dest, off)
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, syscall.EIO
			}
			return fuse.ReadResultData(dest[:n]), 0
		}
	}
	n := f.n
	if n == nil || uint64(off) >= n.FileSize {
		return fuse.ReadResultData(nil), 0
	}
	ctx, cancel := f.fsys.ctx(ctx)
	defer cancel()
	out, err := f.readCommitted(ctx, n, dest, uint64(off))
	if err != nil {
		return nil, f.fsys.errno(err)
	}
	return fuse.ReadResultData(out), 0
}

// readCommitted reads bytes [off, off+len(dest)) of the DAG n into dest,
// walking only the nodes that hold them (node.WriteFile), so a read costs
// the blocks it touches, whatever size the file's links claim. The last
// blocks read are kept: FUSE reads a leaf in several calls.
func (f *fileNode) readCommitted(ctx context.Context, n *node.Node, dest []byte, off uint64) ([]byte, error) {
	f.rmu.Lock()
	defer f.rmu.Unlock()
	f.recent.g = f.fsys.opts.Getter
	end := min(off+uint64(len(dest)), n.FileSize)
	if n.Kind == node.KindRaw && n.Data == nil {
		// A raw leaf looked up by its link: its bytes are read now, and
		// must be as many as the link claimed.
		leaf, _, err := node.GetNode(ctx, &f.recent, n.Cid)
		if err != nil {
			return nil, err
		}
		if leaf.FileSize != n.FileSize {
			return nil, fmt.Errorf("leaf %s holds %d bytes, its link says %d: %w", n.Cid, leaf.FileSize, n.FileSize, node.ErrBadNode)
		}
		n = leaf
	}
	w := sliceWriter{buf: dest[:0]}
	if err := node.WriteFile(ctx, &f.recent, n, off, end, &w); err != nil {
		return nil, err
	}
	return w.buf, nil
}

// recentBlocks is a node.Getter over g that keeps the last recentCount
// blocks it returned: the path from a file's root to the leaf being read,
// which the next read of the same region walks again.
type recentBlocks struct {
	g      node.Getter
	blocks [recentCount]node.Block
	next   int // the slot the next block fills
}

// recentCount is how many blocks a file keeps between reads: a file DAG of
// the importer's shape is at most a few levels deep.
const recentCount = 4

// Get implements node.Getter.
func (r *recentBlocks) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	for _, b := range r.blocks {
		if b.Data != nil && b.Cid.Equals(c) {
			return b.Data, nil
		}
	}
	data, err := r.g.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	r.blocks[r.next] = node.Block{Cid: c, Data: data}
	r.next = (r.next + 1) % recentCount
	return data, nil
}

type sliceWriter struct{ buf []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// linkNode is a UnixFS symlink.
type linkNode struct {
	fs.Inode
	target []byte
}

var _ fs.NodeReadlinker = (*linkNode)(nil)

func (l *linkNode) Readlink(context.Context) ([]byte, syscall.Errno) { return l.target, 0 }
