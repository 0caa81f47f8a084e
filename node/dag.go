package node

import (
	"bytes"
	"fmt"

	cid "github.com/ipfs/go-cid"
)

// Kind is a UnixFS node type (UnixFS spec, Data.DataType).
type Kind int

// UnixFS node types. KindRaw is a raw leaf: file bytes with no envelope.
const (
	KindRaw       Kind = -1
	KindRawData   Kind = 0
	KindDirectory Kind = 1
	KindFile      Kind = 2
	KindMetadata  Kind = 3
	KindSymlink   Kind = 4
	KindHAMTShard Kind = 5
)

func (k Kind) String() string {
	switch k {
	case KindRaw:
		return "raw"
	case KindRawData:
		return "raw-data"
	case KindDirectory:
		return "directory"
	case KindFile:
		return "file"
	case KindMetadata:
		return "metadata"
	case KindSymlink:
		return "symlink"
	case KindHAMTShard:
		return "hamt-shard"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Link is one dag-pb link.
type Link struct {
	Cid   cid.Cid
	Name  string
	Tsize uint64 // cumulative size of the target DAG, in bytes, as the encoder wrote it
}

// Node is a decoded block: a raw leaf or a dag-pb UnixFS node.
type Node struct {
	Cid   cid.Cid
	Kind  Kind
	Links []Link
	// Data is the file bytes the node carries inline (raw leaf: the whole
	// block; file node: UnixFS Data), or a symlink's target.
	Data []byte
	// FileSize is the file's length in bytes (files and raw leaves).
	FileSize uint64
	// BlockSizes holds the byte length of each child's file data, one per link (files).
	BlockSizes []uint64
	// Fanout is a HAMT shard's width; HashType its hash function (0x22, murmur3-x64-64).
	Fanout   uint64
	HashType uint64
}

// IsDir reports whether n is a directory or a HAMT shard.
func (n *Node) IsDir() bool { return n.Kind == KindDirectory || n.Kind == KindHAMTShard }

// IsFile reports whether n holds file bytes (raw leaf or UnixFS file).
func (n *Node) IsFile() bool { return n.Kind == KindRaw || n.Kind == KindFile || n.Kind == KindRawData }

// Decode parses block data named by c. It does not verify the hash (see
// Verify). Errors wrap ErrBadNode or ErrUnsupportedCodec.
//
// dag-pb follows https://ipld.io/specs/codecs/dag-pb/spec/ (strict, as
// go-codec-dagpb decodes; see pb.go); UnixFS follows https://specs.ipfs.tech/unixfs/.
func Decode(c cid.Cid, raw []byte) (*Node, error) {
	switch c.Type() {
	case CodecRaw:
		return &Node{Cid: c, Kind: KindRaw, Data: raw, FileSize: uint64(len(raw))}, nil
	case CodecDagPB:
	default:
		return nil, fmt.Errorf("decoding %s: codec 0x%x: %w", c, c.Type(), ErrUnsupportedCodec)
	}
	pb, err := decodePB(raw)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: dag-pb: %v: %w", c, err, ErrBadNode)
	}
	n := &Node{Cid: c, Links: pb.links}
	if !pb.hasData {
		return nil, fmt.Errorf("decoding %s: dag-pb node without UnixFS data: %w", c, ErrBadNode)
	}
	ud, err := decodeUnixFS(pb.data)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: UnixFS: %v: %w", c, err, ErrBadNode)
	}
	n.Kind = Kind(ud.typ)
	n.Data = ud.data
	n.FileSize = ud.fileSize
	n.BlockSizes = ud.blockSizes
	n.Fanout = ud.fanout
	n.HashType = ud.hashType
	if err := n.check(); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", c, err)
	}
	return n, nil
}

func (n *Node) check() error {
	switch n.Kind {
	case KindFile, KindRawData:
		if len(n.BlockSizes) != len(n.Links) {
			return fmt.Errorf("%d blocksizes for %d links: %w", len(n.BlockSizes), len(n.Links), ErrBadNode)
		}
		sum := uint64(len(n.Data))
		for _, s := range n.BlockSizes {
			sum += s
			if sum < s {
				return fmt.Errorf("blocksizes overflow: %w", ErrBadNode)
			}
		}
		if len(n.Links) == 0 {
			n.FileSize = uint64(len(n.Data))
		} else if sum != n.FileSize {
			return fmt.Errorf("filesize %d is not the sum of its parts %d: %w", n.FileSize, sum, ErrBadNode)
		}
	case KindDirectory:
		// Links sorted by name bytes, as the dag-pb spec has encoders write
		// them; requiring each name to be strictly greater than the one
		// before also refuses a name listed twice, however far apart.
		for i, l := range n.Links {
			if err := checkName(l.Name); err != nil {
				return err
			}
			if i > 0 && l.Name <= n.Links[i-1].Name {
				return fmt.Errorf("entry %q after %q: %w", l.Name, n.Links[i-1].Name, ErrLinkOrder)
			}
		}
	case KindHAMTShard:
		if n.HashType != hamtMurmur3 {
			return fmt.Errorf("HAMT hash 0x%x: only murmur3-x64-64 is supported: %w", n.HashType, ErrBadNode)
		}
		if n.Fanout < 2 || n.Fanout > 1024 || n.Fanout&(n.Fanout-1) != 0 {
			return fmt.Errorf("HAMT fanout %d: %w", n.Fanout, ErrBadNode)
		}
	case KindSymlink, KindMetadata:
	default:
		return fmt.Errorf("UnixFS type %d: %w", int(n.Kind), ErrBadNode)
	}
	return nil
}

// checkName refuses directory entry names that cannot be a path segment.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || bytes.ContainsAny([]byte(name), "/\x00") {
		return fmt.Errorf("entry name %q: %w", name, ErrBadNode)
	}
	return nil
}
