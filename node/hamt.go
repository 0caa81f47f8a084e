package node

import (
	"context"
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"github.com/spaolacci/murmur3"
)

// hamtMurmur3 is the multicodec of murmur3-x64-64, the only hash UnixFS
// HAMT shards use (https://specs.ipfs.tech/unixfs/#hamt-directories).
const hamtMurmur3 = 0x22

// hamtHash returns the 64-bit murmur3 of name, big-endian, as boxo and Kubo compute it.
func hamtHash(name string) []byte {
	h := murmur3.New64()
	h.Write([]byte(name))
	return h.Sum(nil)
}

// hamtIndex returns the bucket index for depth of the hash, taking log2(fanout)
// bits at a time from the most significant end.
func hamtIndex(hash []byte, depth int, fanout uint64) (int, error) {
	w := bits.TrailingZeros64(fanout)
	start := depth * w
	if start+w > len(hash)*8 {
		return 0, fmt.Errorf("HAMT deeper than its hash: %w", ErrBadNode)
	}
	idx := 0
	for i := 0; i < w; i++ {
		bit := start + i
		idx <<= 1
		if hash[bit/8]&(0x80>>(bit%8)) != 0 {
			idx |= 1
		}
	}
	return idx, nil
}

// hamtPadLen is the width of a shard link name's hex prefix.
func hamtPadLen(fanout uint64) int { return len(fmt.Sprintf("%X", fanout-1)) }

// hamtLookup finds name in the sharded directory rooted at shard. It calls
// visit with every shard node on the way (so a caller can prove the path) and
// returns the entry's link. Errors wrap ErrNoSuchPath or ErrBadNode.
func hamtLookup(ctx context.Context, g Getter, shard *Node, name string, visit func(*Node, []byte) error) (Link, error) {
	hash := hamtHash(name)
	for depth := 0; ; depth++ {
		idx, err := hamtIndex(hash, depth, shard.Fanout)
		if err != nil {
			return Link{}, err
		}
		pad := hamtPadLen(shard.Fanout)
		prefix := fmt.Sprintf("%0*X", pad, idx)
		var next *Link
		for i := range shard.Links {
			l := &shard.Links[i]
			if len(l.Name) < pad || !strings.EqualFold(l.Name[:pad], prefix) {
				continue
			}
			if len(l.Name) == pad {
				next = l
				break
			}
			if l.Name[pad:] == name {
				return *l, nil
			}
		}
		if next == nil {
			return Link{}, fmt.Errorf("%q: %w", name, ErrNoSuchPath)
		}
		raw, err := g.Get(ctx, next.Cid)
		if err != nil {
			return Link{}, err
		}
		child, err := Decode(next.Cid, raw)
		if err != nil {
			return Link{}, err
		}
		if child.Kind != KindHAMTShard || child.Fanout != shard.Fanout {
			return Link{}, fmt.Errorf("HAMT child %s is a %s: %w", next.Cid, child.Kind, ErrBadNode)
		}
		if err := visit(child, raw); err != nil {
			return Link{}, err
		}
		shard = child
	}
}

// hamtEntryName returns the entry name a shard link carries, or "" for a
// link to a sub-shard.
func hamtEntryName(shard *Node, l Link) string {
	pad := hamtPadLen(shard.Fanout)
	if len(l.Name) <= pad {
		return ""
	}
	return l.Name[pad:]
}

// hamtSlot parses the slot index a shard link name starts with (hex, in
// either case, hamtPadLen wide). Errors wrap ErrBadNode.
func hamtSlot(shard *Node, name string) (int, error) {
	pad := hamtPadLen(shard.Fanout)
	if len(name) < pad {
		return 0, fmt.Errorf("HAMT link name %q: shorter than its slot prefix: %w", name, ErrBadNode)
	}
	idx, err := strconv.ParseUint(name[:pad], 16, 16)
	if err != nil || idx >= shard.Fanout {
		return 0, fmt.Errorf("HAMT link name %q: slot prefix not below fanout %d: %w", name, shard.Fanout, ErrBadNode)
	}
	return int(idx), nil
}

// hamtEntries calls yield with each entry of the sharded directory rooted at
// root, in shard order, reading sub-shards through g. It checks every shard
// against its position (UnixFS spec, HAMT directories): each slot of a shard
// holds one link; an entry's name hashes to the slots on the path it was
// found under; a sub-shard has the root's fanout, lies within the hash's
// depth and appears once in the whole directory (a valid HAMT never links
// one shard twice: its entries could not hash to both places). So no name
// is listed twice and each distinct shard block is read once. Errors wrap
// ErrBadNode, or are yield's or g's.
func hamtEntries(ctx context.Context, g Getter, root *Node, yield func(Entry) error) error {
	w := bits.TrailingZeros64(root.Fanout)
	maxDepth := 64 / w // shards deeper than this have no hash bits left
	seen := map[string]struct{}{root.Cid.KeyString(): {}}
	path := make([]int, 0, maxDepth)
	var walk func(s *Node) error
	walk = func(s *Node) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		used := make([]uint64, (s.Fanout+63)/64)
		depth := len(path)
		for _, l := range s.Links {
			slot, err := hamtSlot(s, l.Name)
			if err != nil {
				return err
			}
			if used[slot/64]&(1<<(slot%64)) != 0 {
				return fmt.Errorf("HAMT shard %s: slot %d holds two links: %w", s.Cid, slot, ErrBadNode)
			}
			used[slot/64] |= 1 << (slot % 64)
			if name := hamtEntryName(s, l); name != "" {
				if err := checkName(name); err != nil {
					return err
				}
				if err := hamtCheckPath(name, path, slot, s.Fanout); err != nil {
					return err
				}
				if err := yield(Entry{Name: name, Cid: l.Cid, Tsize: l.Tsize}); err != nil {
					return err
				}
				continue
			}
			if depth+1 >= maxDepth {
				return fmt.Errorf("HAMT shard %s: sub-shard deeper than the hash: %w", s.Cid, ErrBadNode)
			}
			k := l.Cid.KeyString()
			if _, dup := seen[k]; dup {
				return fmt.Errorf("HAMT shard %s linked twice: %w", l.Cid, ErrBadNode)
			}
			seen[k] = struct{}{}
			child, _, err := GetNode(ctx, g, l.Cid)
			if err != nil {
				return err
			}
			if child.Kind != KindHAMTShard || child.Fanout != root.Fanout {
				return fmt.Errorf("HAMT child %s is a %s of fanout %d: %w", l.Cid, child.Kind, child.Fanout, ErrBadNode)
			}
			path = append(path, slot)
			err = walk(child)
			path = path[:len(path)-1]
			if err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root)
}

// hamtCheckPath checks that name hashes to the slots path, then slot, as
// a lookup would follow them. Errors wrap ErrBadNode.
func hamtCheckPath(name string, path []int, slot int, fanout uint64) error {
	h := hamtHash(name)
	for d := 0; d <= len(path); d++ {
		want := slot
		if d < len(path) {
			want = path[d]
		}
		got, err := hamtIndex(h, d, fanout)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("HAMT entry %q at depth %d slot %d: its hash leads to slot %d: %w", name, d, want, got, ErrBadNode)
		}
	}
	return nil
}
