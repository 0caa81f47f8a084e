package node_test

import (
	"context"
	"errors"
	"fmt"

	cid "github.com/ipfs/go-cid"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hearthcdn/hearth/node"
)

// This file builds dag-pb/UnixFS blocks by hand (dag-pb spec and UnixFS
// spec wire formats), so tests and fuzzers can write DAGs no importer would:
// many links to one child, shards at the wrong position.

// pbLink is a dag-pb link to encode.
type pbLink struct {
	c     cid.Cid
	name  string
	tsize uint64
}

// encodePB encodes a dag-pb node: links, then the UnixFS Data field.
func encodePB(links []pbLink, data []byte) []byte {
	var b []byte
	for _, l := range links {
		var lb []byte
		lb = protowire.AppendTag(lb, 1, protowire.BytesType)
		lb = protowire.AppendBytes(lb, l.c.Bytes())
		lb = protowire.AppendTag(lb, 2, protowire.BytesType)
		lb = protowire.AppendString(lb, l.name)
		lb = protowire.AppendTag(lb, 3, protowire.VarintType)
		lb = protowire.AppendVarint(lb, l.tsize)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, lb)
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendBytes(b, data)
}

// unixfsData is a UnixFS Data message to encode.
type unixfsData struct {
	typ        node.Kind
	data       []byte
	fileSize   uint64
	blockSizes []uint64
	fanout     uint64
}

func (u unixfsData) encode() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(u.typ))
	if u.data != nil {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, u.data)
	}
	if u.typ == node.KindFile {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, u.fileSize)
	}
	for _, s := range u.blockSizes {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, s)
	}
	if u.typ == node.KindHAMTShard {
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, 0x22)
		b = protowire.AppendTag(b, 6, protowire.VarintType)
		b = protowire.AppendVarint(b, u.fanout)
	}
	return b
}

// dagBuilder puts hand-built blocks into a MemStore.
type dagBuilder struct{ bs *node.MemStore }

func newDAGBuilder() *dagBuilder { return &dagBuilder{bs: node.NewMemStore()} }

func (d *dagBuilder) put(codec uint64, raw []byte) cid.Cid {
	c := node.Sum(codec, raw)
	_ = d.bs.Put(context.Background(), c, raw)
	return c
}

// raw stores a raw leaf.
func (d *dagBuilder) raw(data []byte) cid.Cid { return d.put(node.CodecRaw, data) }

// file stores a UnixFS file node linking children of the given sizes.
func (d *dagBuilder) file(children []cid.Cid, sizes []uint64) cid.Cid {
	links := make([]pbLink, len(children))
	var total uint64
	for i, c := range children {
		links[i] = pbLink{c: c, tsize: sizes[i]}
		total += sizes[i]
	}
	u := unixfsData{typ: node.KindFile, fileSize: total, blockSizes: sizes}
	return d.put(node.CodecDagPB, encodePB(links, u.encode()))
}

// dir stores a basic directory; links must be sorted by name.
func (d *dagBuilder) dir(links []pbLink) cid.Cid {
	return d.put(node.CodecDagPB, encodePB(links, unixfsData{typ: node.KindDirectory}.encode()))
}

// shard stores a HAMT shard of fanout whose links already carry their
// slot prefixes.
func (d *dagBuilder) shard(fanout uint64, links []pbLink) cid.Cid {
	u := unixfsData{typ: node.KindHAMTShard, data: []byte{}, fanout: fanout}
	return d.put(node.CodecDagPB, encodePB(links, u.encode()))
}

// errBudget ends a walk that reads more blocks than a test allows.
var errBudget = errors.New("block budget spent")

// countingGetter counts Get calls and fails every call past budget, so a walk
// that does not follow the distinct blocks stops at once instead of running
// for hours.
type countingGetter struct {
	g      node.Getter
	gets   int
	budget int
}

func (c *countingGetter) Get(ctx context.Context, id cid.Cid) ([]byte, error) {
	c.gets++
	if c.gets > c.budget {
		return nil, fmt.Errorf("get %d of %s: %w", c.gets, id, errBudget)
	}
	return c.g.Get(ctx, id)
}
