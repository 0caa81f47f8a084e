package node

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"

	cid "github.com/ipfs/go-cid"
)

// MarkDAG adds to fresh the key of every block reachable from root that is
// in neither already nor fresh, and returns the sum of their lengths in
// bytes. Raw leaves are not read (their sizes come from their parents, or
// GetSize), so a missing leaf goes unnoticed; a missing inner node is an
// error wrapping ErrNotFound, as what lies under it is unknown.
func MarkDAG(ctx context.Context, bs Blockstore, root cid.Cid, already, fresh map[string]struct{}) (int64, error) {
	return markDAG(ctx, bs, root, fresh, false, already)
}

// MarkPresent adds to fresh the keys of the blocks reachable from root
// that are in neither already nor fresh, over what is present (a DAG
// fetched lazily, or a replication in progress): a missing inner node, and
// what lies under it, is skipped. Raw leaves are never read; they are
// marked by the links that name them, present or not, so a walk over a
// large file costs its inner nodes only. Errors are the store's and ctx's.
func MarkPresent(ctx context.Context, bs Blockstore, root cid.Cid, already, fresh map[string]struct{}) error {
	_, err := markDAG(ctx, bs, root, fresh, true, already)
	return err
}

// markDAG is MarkDAG, skipping the keys in any of already; with partial,
// missing blocks (and what lies under them) are skipped instead.
func markDAG(ctx context.Context, bs Blockstore, root cid.Cid, fresh map[string]struct{}, partial bool, already ...map[string]struct{}) (int64, error) {
	var size int64
	type item struct {
		c    cid.Cid
		size uint64
	}
	stack := []item{{c: root}}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		k := it.c.KeyString()
		if _, ok := fresh[k]; ok || inAny(already, k) {
			continue
		}
		if it.c.Type() == CodecRaw {
			n := int64(it.size)
			if n == 0 && !partial {
				sz, err := bs.GetSize(ctx, it.c)
				if err != nil {
					return 0, err
				}
				n = int64(sz)
			}
			fresh[k] = struct{}{}
			size += n
			continue
		}
		nd, raw, err := GetNode(ctx, bs, it.c)
		if partial && errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		fresh[k] = struct{}{}
		size += int64(len(raw))
		for i, l := range nd.Links {
			sz := l.Tsize
			if nd.IsFile() && i < len(nd.BlockSizes) && l.Cid.Type() == CodecRaw {
				sz = nd.BlockSizes[i]
			}
			stack = append(stack, item{c: l.Cid, size: sz})
		}
	}
	return size, nil
}

func inAny(sets []map[string]struct{}, k string) bool {
	for _, m := range sets {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// GCStore is what garbage collection works on: blocks and the metadata
// (pins, root records) that say which to keep.
type GCStore interface {
	Blockstore
	MetaStore
}

// GCStats describes one garbage collection.
type GCStats struct {
	Deleted int // blocks deleted
	Kept    int // blocks seen and kept (CollectGarbage; CollectDropped sees only doomed ones)
}

// CollectGarbage deletes every block of s that nothing keeps. Kept are:
// the keys in live (the caller's own marks; not modified); the whole
// DAG of every pin in s, of every site (AllPins); and, of every site whose
// root records s holds, but for the sites in managed (whose pins the
// caller keeps and drops itself), the blocks present of its newest
// record's DAG: a site published before it was pinned, or one another
// role replicates into the same store.
//
// Nothing is deleted if any pin is unreadable or names a DAG with a
// missing block: collection never runs without knowing all it must keep.
// Blocks are deleted in batches of 1,024 (with DeleteMany when s has it);
// an error midway leaves the rest for the next collection.
func CollectGarbage(ctx context.Context, s GCStore, live map[string]struct{}, managed ...SiteID) (GCStats, error) {
	more, err := markKept(ctx, s, live, managed)
	if err != nil {
		return GCStats{}, err
	}
	return sweep(ctx, s, s.AllKeys(ctx), live, more)
}

// CollectDropped deletes, of the blocks reachable from the roots in
// dropped (just unpinned), those that nothing keeps (as CollectGarbage
// decides: it walks the kept pins' inner nodes too). It reads no raw leaf
// where a full collection reads the whole store; blocks no root reaches (an interrupted
// import's) stay until the next CollectGarbage. Errors as CollectGarbage.
func CollectDropped(ctx context.Context, s GCStore, dropped []cid.Cid, live map[string]struct{}, managed ...SiteID) (GCStats, error) {
	if len(dropped) == 0 {
		return GCStats{}, nil
	}
	more, err := markKept(ctx, s, live, managed)
	if err != nil {
		return GCStats{}, err
	}
	doomed := make(map[string]struct{})
	for _, root := range dropped {
		if _, err := markDAG(ctx, s, root, doomed, true, live, more); err != nil {
			return GCStats{}, fmt.Errorf("walking dropped root %s: %w", root, err)
		}
	}
	keys := func(yield func(cid.Cid, error) bool) {
		for k := range doomed {
			c, err := cid.Cast([]byte(k))
			if !yield(c, err) {
				return
			}
		}
	}
	return sweep(ctx, s, keys, live, more)
}

// markKept marks, beside live, what collection keeps (see CollectGarbage).
func markKept(ctx context.Context, s GCStore, live map[string]struct{}, managed []SiteID) (map[string]struct{}, error) {
	more := make(map[string]struct{})
	pins, err := AllPins(s)
	if err != nil {
		return nil, err
	}
	for _, root := range pins {
		if _, err := markDAG(ctx, s, root, more, false, live); err != nil {
			return nil, fmt.Errorf("marking pinned root %s: %w", root, err)
		}
	}
	for _, root := range latestRoots(s, managed) {
		if _, err := markDAG(ctx, s, root, more, true, live); err != nil {
			return nil, fmt.Errorf("marking root %s: %w", root, err)
		}
	}
	return more, nil
}

// sweep deletes the blocks of keys in none of kept, in batches of 1,024.
func sweep(ctx context.Context, s GCStore, keys iter.Seq2[cid.Cid, error], kept ...map[string]struct{}) (GCStats, error) {
	var st GCStats
	type deleteManyer interface {
		DeleteMany(ctx context.Context, cs []cid.Cid) error
	}
	var batch []cid.Cid
	del := func() error {
		if len(batch) == 0 {
			return nil
		}
		if dm, ok := s.(deleteManyer); ok {
			if err := dm.DeleteMany(ctx, batch); err != nil {
				return err
			}
		} else {
			for _, c := range batch {
				if err := s.Delete(ctx, c); err != nil {
					return err
				}
			}
		}
		st.Deleted += len(batch)
		batch = batch[:0]
		return nil
	}
	for c, err := range keys {
		if err != nil {
			return st, fmt.Errorf("listing blocks: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if inAny(kept, c.KeyString()) {
			st.Kept++
			continue
		}
		batch = append(batch, c)
		if len(batch) >= 1024 {
			if err := del(); err != nil {
				return st, fmt.Errorf("deleting blocks: %w", err)
			}
		}
	}
	if err := del(); err != nil {
		return st, fmt.Errorf("deleting blocks: %w", err)
	}
	return st, nil
}

// latestRoots returns the root of the newest record of every site whose
// records m holds but those in except (RecordLog's keys sort by sequence;
// a newest record that does not verify is skipped).
func latestRoots(m MetaStore, except []SiteID) []cid.Cid {
	newest := make(map[string][]byte)
	var order []string
	for k, v := range m.MetaPrefix("rec/") {
		site, _, ok := strings.Cut(k[len("rec/"):], "/")
		if !ok || slices.ContainsFunc(except, func(e SiteID) bool { return e.String() == site }) {
			continue
		}
		if _, seen := newest[site]; !seen {
			order = append(order, site)
		}
		newest[site] = v
	}
	var out []cid.Cid
	for _, site := range order {
		if r, err := ParseRootRecord(newest[site]); err == nil {
			out = append(out, r.Root)
		}
	}
	return out
}
