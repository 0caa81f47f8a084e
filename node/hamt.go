package node

import (
	"context"
	"fmt"
	"math/bits"
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
