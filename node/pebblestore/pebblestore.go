// Package pebblestore is a node.Blockstore on disk, in a pebble database.
// It is native-only: pebble does not build for js/wasm.
//
// Layout of keys: "b/" + binary CID → block bytes; "m/" + name → metadata
// (pins, root records) that other packages keep beside the blocks so that
// one synced batch can change both.
package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"syscall"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

var (
	blockPrefix = []byte("b/")
	metaPrefix  = []byte("m/")
)

// Options tune Open.
type Options struct {
	// FS is the filesystem to use; nil means the OS's. Tests inject faults here.
	FS vfs.FS
	// CacheBytes is the block cache size in bytes, for blocks read back
	// from tables; 0 means 32 MiB. Memtables come on top (MemTableBytes).
	CacheBytes int64
	// MemTableBytes is the size of one memtable in bytes; 0 means 64 MiB,
	// which makes large imports fast. A long-running node that must stay
	// small (a seeder) uses a few MiB: filled memtables stay resident, so
	// the store needs up to about 4 times this plus CacheBytes of memory.
	MemTableBytes uint64
	// ReserveBytes is the free space, in bytes, that writes leave on the
	// disk; a write that would eat into it fails with ErrDiskFull instead.
	// pebble cannot survive running out of space mid-commit (it stops the
	// process), so the store refuses first. 0 means 64 MiB; -1 disables.
	ReserveBytes int64
}

// ErrDiskFull: a write would leave less free disk than Options.ReserveBytes.
// Nothing already stored is affected; free space and retry.
var ErrDiskFull = fmt.Errorf("disk full: %w", syscall.ENOSPC)

// ErrInUse: another process has the store open (pebble locks its
// directory); a store has one process at a time.
var ErrInUse = errors.New("store in use")

// Store is a pebble-backed node.Blockstore, safe for concurrent use.
// Every write is synced to the write-ahead log before it returns, so an
// acknowledged block survives kill -9 and power loss.
type Store struct {
	db      *pebble.DB
	fs      vfs.FS
	dir     string
	reserve int64
}

var _ node.Blockstore = (*Store)(nil)

// Open opens (creating if needed) the store in dir. A directory already
// opened by another process fails with an error naming the lock.
func Open(dir string, opts Options) (*Store, error) {
	if opts.CacheBytes == 0 {
		opts.CacheBytes = 32 << 20
	}
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.ReserveBytes == 0 {
		opts.ReserveBytes = 64 << 20
	}
	if opts.MemTableBytes == 0 {
		opts.MemTableBytes = 64 << 20
	}
	// pebble charges live memtables to the block cache (a full one and
	// one being flushed, usually), shrinking it by as much; sized as
	// CacheBytes alone, a cache smaller than two memtables holds no block
	// after a large write and every read decompresses a table block.
	cache := pebble.NewCache(opts.CacheBytes + 2*int64(opts.MemTableBytes))
	defer cache.Unref()
	po := &pebble.Options{
		FS:     opts.FS,
		Cache:  cache,
		Logger: quietLogger{},
		// Values are blocks of up to 256 KiB under random keys: large
		// memtables and a tall L0 cut compaction rewrites during imports.
		MemTableSize:                opts.MemTableBytes,
		MemTableStopWritesThreshold: 4,
		L0CompactionThreshold:       8,
		L0StopWritesThreshold:       64,
		LBaseMaxBytes:               1 << 30,
	}
	po.Levels = make([]pebble.LevelOptions, 7)
	for i := range po.Levels {
		po.Levels[i].TargetFileSize = 64 << 20
		po.Levels[i].BlockSize = 32 << 10
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) { // fcntl on a held lock (Linux); EACCES would be ambiguous with permissions
			// pebble's LOCK file is held: one process per store.
			return nil, fmt.Errorf("opening store %s: %w (another hearth process has it open; give this one its own --store): %w", dir, ErrInUse, err)
		}
		return nil, fmt.Errorf("opening store %s: %w", dir, err)
	}
	return &Store{db: db, fs: opts.FS, dir: dir, reserve: opts.ReserveBytes}, nil
}

// Close flushes and closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing store: %w", err)
	}
	return nil
}

func blockKey(c cid.Cid) []byte { return append(append([]byte{}, blockPrefix...), c.Bytes()...) }

// Get implements node.Getter. It returns a copy of the stored bytes.
func (s *Store) Get(_ context.Context, c cid.Cid) ([]byte, error) {
	v, closer, err := s.db.Get(blockKey(c))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("getting %s: %w", c, node.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("getting %s: %w", c, err)
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, nil
}

// room checks that writing n more bytes leaves the reserve free.
func (s *Store) room(n int) error {
	if s.reserve < 0 {
		return nil
	}
	du, err := s.fs.GetDiskUsage(s.dir)
	if err != nil {
		return fmt.Errorf("checking free space: %w", err)
	}
	// Written bytes land in the WAL and later in a table: count them twice.
	if int64(du.AvailBytes) < s.reserve+2*int64(n) {
		return fmt.Errorf("storing %d bytes with %d free (reserve %d): %w", n, du.AvailBytes, s.reserve, ErrDiskFull)
	}
	return nil
}

// Put implements node.Blockstore; it is durable when it returns. It fails
// with ErrDiskFull when the disk is nearly full.
func (s *Store) Put(_ context.Context, c cid.Cid, data []byte) error {
	if err := s.room(len(data)); err != nil {
		return err
	}
	if err := s.db.Set(blockKey(c), data, pebble.Sync); err != nil {
		return fmt.Errorf("storing %s: %w", c, err)
	}
	return nil
}

// PutMany implements node.Blockstore: one atomic, synced batch. It fails
// with ErrDiskFull when the disk is nearly full.
func (s *Store) PutMany(_ context.Context, blocks []node.Block) error {
	n := 0
	for _, bl := range blocks {
		n += len(bl.Data) + 64
	}
	if err := s.room(n); err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, bl := range blocks {
		if err := b.Set(blockKey(bl.Cid), bl.Data, nil); err != nil {
			return fmt.Errorf("storing %s: %w", bl.Cid, err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("storing %d blocks: %w", len(blocks), err)
	}
	return nil
}

// Has implements node.Blockstore.
func (s *Store) Has(_ context.Context, c cid.Cid) (bool, error) {
	_, closer, err := s.db.Get(blockKey(c))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking %s: %w", c, err)
	}
	closer.Close()
	return true, nil
}

// GetSize implements node.Blockstore.
func (s *Store) GetSize(_ context.Context, c cid.Cid) (int, error) {
	v, closer, err := s.db.Get(blockKey(c))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, fmt.Errorf("sizing %s: %w", c, node.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("sizing %s: %w", c, err)
	}
	n := len(v)
	closer.Close()
	return n, nil
}

// Delete implements node.Blockstore; it is durable when it returns.
func (s *Store) Delete(_ context.Context, c cid.Cid) error {
	if err := s.db.Delete(blockKey(c), pebble.Sync); err != nil {
		return fmt.Errorf("deleting %s: %w", c, err)
	}
	return nil
}

// DeleteMany removes blocks in one synced batch.
func (s *Store) DeleteMany(_ context.Context, cs []cid.Cid) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, c := range cs {
		if err := b.Delete(blockKey(c), nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("deleting %d blocks: %w", len(cs), err)
	}
	return nil
}

func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// AllKeys implements node.Blockstore.
func (s *Store) AllKeys(ctx context.Context) iter.Seq2[cid.Cid, error] {
	return func(yield func(cid.Cid, error) bool) {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: blockPrefix, UpperBound: prefixEnd(blockPrefix)})
		if err != nil {
			yield(cid.Undef, err)
			return
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				yield(cid.Undef, err)
				return
			}
			c, err := cid.Cast(bytes.Clone(it.Key()[len(blockPrefix):]))
			if !yield(c, err) || err != nil {
				return
			}
		}
		if err := it.Error(); err != nil {
			yield(cid.Undef, err)
		}
	}
}

// GetMeta returns the metadata value under key, or an error wrapping
// node.ErrNotFound.
func (s *Store) GetMeta(key string) ([]byte, error) {
	v, closer, err := s.db.Get(append(bytes.Clone(metaPrefix), key...))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("metadata %q: %w", key, node.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("metadata %q: %w", key, err)
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, nil
}

// PutMeta durably sets metadata key to val.
func (s *Store) PutMeta(key string, val []byte) error {
	if err := s.room(len(val) + len(key)); err != nil {
		return err
	}
	if err := s.db.Set(append(bytes.Clone(metaPrefix), key...), val, pebble.Sync); err != nil {
		return fmt.Errorf("metadata %q: %w", key, err)
	}
	return nil
}

// DeleteMeta durably removes metadata key.
func (s *Store) DeleteMeta(key string) error {
	if err := s.db.Delete(append(bytes.Clone(metaPrefix), key...), pebble.Sync); err != nil {
		return fmt.Errorf("metadata %q: %w", key, err)
	}
	return nil
}

// MetaPrefix yields every metadata key starting with prefix, in key order,
// with its value.
func (s *Store) MetaPrefix(prefix string) iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		lo := append(bytes.Clone(metaPrefix), prefix...)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
		if err != nil {
			return
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			if !yield(string(it.Key()[len(metaPrefix):]), bytes.Clone(it.Value())) {
				return
			}
		}
	}
}

// DiskUsage returns the bytes the database occupies on disk.
func (s *Store) DiskUsage() uint64 { return s.db.Metrics().DiskSpaceUsage() }

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	// pebble calls Fatalf on unrecoverable corruption; it must not continue.
	panic(fmt.Sprintf(format, args...))
}
