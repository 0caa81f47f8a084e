package dagtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	cid "github.com/ipfs/go-cid"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hearthcdn/hearth/node"
)

// EncodePB encodes a dag-pb node: links, then data as the Data field.
func EncodePB(links []node.Link, data []byte) []byte {
	var b []byte
	for _, l := range links {
		var lb []byte
		lb = protowire.AppendTag(lb, 1, protowire.BytesType)
		lb = protowire.AppendBytes(lb, l.Cid.Bytes())
		lb = protowire.AppendTag(lb, 2, protowire.BytesType)
		lb = protowire.AppendString(lb, l.Name)
		lb = protowire.AppendTag(lb, 3, protowire.VarintType)
		lb = protowire.AppendVarint(lb, l.Tsize)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, lb)
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendBytes(b, data)
}

// UnixFS is a UnixFS Data message to encode.
type UnixFS struct {
	Type       node.Kind
	Data       []byte
	FileSize   uint64
	BlockSizes []uint64
	Fanout     uint64 // HAMT shards; the hash is always murmur3-x64-64
}

// Encode returns the Data message's wire form.
func (u UnixFS) Encode() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(u.Type))
	if u.Data != nil {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, u.Data)
	}
	if u.Type == node.KindFile {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, u.FileSize)
	}
	for _, s := range u.BlockSizes {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, s)
	}
	if u.Type == node.KindHAMTShard {
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, 0x22)
		b = protowire.AppendTag(b, 6, protowire.VarintType)
		b = protowire.AppendVarint(b, u.Fanout)
	}
	return b
}

// Builder puts hand-built blocks into a MemStore.
type Builder struct{ Store *node.MemStore }

// NewBuilder returns a Builder over a new MemStore.
func NewBuilder() *Builder { return &Builder{Store: node.NewMemStore()} }

// Put stores raw under its CID of codec and returns the CID.
func (d *Builder) Put(codec uint64, raw []byte) cid.Cid {
	c := node.Sum(codec, raw)
	_ = d.Store.Put(context.Background(), c, raw)
	return c
}

// Raw stores a raw leaf.
func (d *Builder) Raw(data []byte) cid.Cid { return d.Put(node.CodecRaw, data) }

// File stores a UnixFS file node linking children of the given sizes.
func (d *Builder) File(children []cid.Cid, sizes []uint64) cid.Cid {
	links := make([]node.Link, len(children))
	var total uint64
	for i, c := range children {
		links[i] = node.Link{Cid: c, Tsize: sizes[i]}
		total += sizes[i]
	}
	u := UnixFS{Type: node.KindFile, FileSize: total, BlockSizes: sizes}
	return d.Put(node.CodecDagPB, EncodePB(links, u.Encode()))
}

// Dir stores a basic directory; links must be sorted by name.
func (d *Builder) Dir(links []node.Link) cid.Cid {
	return d.Put(node.CodecDagPB, EncodePB(links, UnixFS{Type: node.KindDirectory}.Encode()))
}

// Shard stores a HAMT shard of fanout whose links already carry their
// slot prefixes.
func (d *Builder) Shard(fanout uint64, links []node.Link) cid.Cid {
	u := UnixFS{Type: node.KindHAMTShard, Data: []byte{}, Fanout: fanout}
	return d.Put(node.CodecDagPB, EncodePB(links, u.Encode()))
}

// ErrBudget ends a walk that reads more blocks than a test allows.
var ErrBudget = errors.New("block budget spent")

// CountingGetter counts Get calls and fails every call past budget, so a walk
// that does not follow the distinct blocks stops at once instead of running
// for hours.
type CountingGetter struct {
	G      node.Getter
	Gets   atomic.Int64 // Get calls so far
	Budget int64
}

// Get implements node.Getter.
func (c *CountingGetter) Get(ctx context.Context, id cid.Cid) ([]byte, error) {
	if n := c.Gets.Add(1); n > c.Budget {
		return nil, fmt.Errorf("get %d of %s: %w", n, id, ErrBudget)
	}
	return c.G.Get(ctx, id)
}

// SlotName returns the link name prefix of slot in a HAMT shard of fanout:
// the slot in upper-case hex, as wide as fanout-1.
func SlotName(fanout uint64, slot int) string {
	return fmt.Sprintf("%0*X", len(fmt.Sprintf("%X", fanout-1)), slot)
}

// FileBomb builds a file of ten distinct blocks whose every level links
// many times to the level below: a 16-byte leaf under seven levels of 174
// links and two of 2, claiming 16·174⁷·4 bytes (3.1e17). It returns the
// root and the number of distinct blocks.
func (d *Builder) FileBomb() (root cid.Cid, distinct int) {
	counts := []int{174, 174, 174, 174, 174, 174, 174, 2, 2}
	c := d.Raw(bytes.Repeat([]byte("b"), 16))
	size := uint64(16)
	for _, k := range counts {
		kids := make([]cid.Cid, k)
		sizes := make([]uint64, k)
		for i := range kids {
			kids[i], sizes[i] = c, size
		}
		c = d.File(kids, sizes)
		size *= uint64(k)
	}
	return c, len(counts) + 1
}

// HAMTBomb builds a sharded directory of 14 shard blocks (and one leaf):
// 13 shards of fanout 4, each linking the one below at all four slots,
// over a last shard holding two entries. Read without position checks, it
// lists 4¹³·2 entries.
func (d *Builder) HAMTBomb() cid.Cid {
	leaf := d.Raw([]byte("x"))
	s := d.Shard(4, []node.Link{{Cid: leaf, Name: "0a"}, {Cid: leaf, Name: "1b"}})
	for range 13 {
		var links []node.Link
		for slot := range 4 {
			links = append(links, node.Link{Cid: s, Name: SlotName(4, slot)})
		}
		s = d.Shard(4, links)
	}
	return s
}
