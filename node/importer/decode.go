package importer

import (
	"fmt"

	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

type blockOf struct {
	c   cid.Cid
	raw []byte
}

func (b blockOf) RawData() []byte          { return b.raw }
func (b blockOf) Cid() cid.Cid             { return b.c }
func (b blockOf) String() string           { return b.c.String() }
func (b blockOf) Loggable() map[string]any { return map[string]any{"block": b.c.String()} }

var _ blocks.Block = blockOf{}

func decodeNode(b blocks.Block) (ipld.Node, error) {
	switch b.Cid().Type() {
	case cid.Raw:
		return merkledag.NewRawNodeWPrefix(b.RawData(), b.Cid().Prefix())
	case cid.DagProtobuf:
		return merkledag.DecodeProtobufBlock(b)
	}
	return nil, fmt.Errorf("codec 0x%x: unsupported", b.Cid().Type())
}
