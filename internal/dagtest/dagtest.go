// Package dagtest builds dag-pb UnixFS blocks field by field, for tests:
// links are written in the order given, so it also builds the malformed
// nodes a decoder must refuse (links out of name order, duplicate names),
// DAGs that repeat one block many times (many links to one child, shards at
// the wrong position) and bombs built from them. It also counts block
// reads, to bound what a walk costs.
//
// The encodings follow https://ipld.io/specs/codecs/dag-pb/spec/ and
// https://specs.ipfs.tech/unixfs/.
package dagtest

import (
	"context"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hearthcdn/hearth/node"
)

// PB encodes a dag-pb node: links in the order given, then data.
func PB(links []node.Link, data []byte) node.Block {
	b := EncodePB(links, data)
	return node.Block{Cid: node.Sum(node.CodecDagPB, b), Data: b}
}

// unixfs encodes a UnixFS Data message of type typ with optional inline
// data, filesize and blocksizes.
func unixfs(typ node.Kind, data []byte, fileSize uint64, blockSizes []uint64) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(typ))
	if data != nil {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, data)
	}
	if typ == node.KindFile {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, fileSize)
	}
	for _, s := range blockSizes {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, s)
	}
	return b
}

// Dir is a basic UnixFS directory with links in the order given.
func Dir(links ...node.Link) node.Block {
	return PB(links, unixfs(node.KindDirectory, nil, 0, nil))
}

// Symlink is a UnixFS symlink to target.
func Symlink(target string) node.Block {
	return PB(nil, unixfs(node.KindSymlink, []byte(target), 0, nil))
}

// Raw is a raw leaf holding data.
func Raw(data []byte) node.Block {
	return node.Block{Cid: node.Sum(node.CodecRaw, data), Data: data}
}

// Repeat is a UnixFS file node whose n links all point at child, a file
// (or raw leaf) of size bytes: a file of n*size bytes made of one distinct
// child.
func Repeat(child node.Block, size uint64, n int) node.Block {
	links := make([]node.Link, n)
	sizes := make([]uint64, n)
	for i := range links {
		links[i] = node.Link{Cid: child.Cid, Tsize: uint64(len(child.Data))}
		sizes[i] = size
	}
	return PB(links, unixfs(node.KindFile, nil, size*uint64(n), sizes))
}

// Link names b in a directory.
func Link(name string, b node.Block) node.Link {
	return node.Link{Cid: b.Cid, Name: name, Tsize: uint64(len(b.Data))}
}

// Put stores blocks in bs, failing the test on error.
func Put(t testing.TB, bs node.Blockstore, blocks ...node.Block) {
	t.Helper()
	if err := bs.PutMany(context.Background(), blocks); err != nil {
		t.Fatal(err)
	}
}
