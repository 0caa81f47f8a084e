package node

import (
	"fmt"

	cid "github.com/ipfs/go-cid"
	"google.golang.org/protobuf/encoding/protowire"
)

// The dag-pb and UnixFS wire formats are decoded here with protowire (the
// protobuf wire primitives of google.golang.org/protobuf), not with
// go-codec-dagpb and go-unixfsnode: those pull go-ipld-prime into the
// service worker's wasm and put it over its size budget. The tests check
// this decoder against go-codec-dagpb on every fuzz input.

// pbNode is a decoded dag-pb node (https://ipld.io/specs/codecs/dag-pb/spec/).
type pbNode struct {
	links   []Link
	data    []byte
	hasData bool
}

// decodePB decodes dag-pb strictly, as the spec's decoder does: links
// (field 2) before data (field 1), at most one data field, each link with a
// Hash (field 1) followed by an optional Name (2) and Tsize (3), in that
// order, and no other fields.
func decodePB(b []byte) (*pbNode, error) {
	n := &pbNode{}
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return nil, protowire.ParseError(l)
		}
		b = b[l:]
		if typ != protowire.BytesType {
			return nil, fmt.Errorf("field %d has wire type %d", num, typ)
		}
		v, l := protowire.ConsumeBytes(b)
		if l < 0 {
			return nil, protowire.ParseError(l)
		}
		b = b[l:]
		switch num {
		case 1:
			if n.hasData {
				return nil, fmt.Errorf("duplicate Data")
			}
			n.data, n.hasData = v, true
		case 2:
			if n.hasData {
				return nil, fmt.Errorf("Links after Data")
			}
			link, err := decodePBLink(v)
			if err != nil {
				return nil, err
			}
			n.links = append(n.links, link)
		default:
			return nil, fmt.Errorf("unknown field %d", num)
		}
	}
	return n, nil
}

func decodePBLink(b []byte) (Link, error) {
	var l Link
	last := protowire.Number(0)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return l, protowire.ParseError(n)
		}
		b = b[n:]
		if num <= last {
			return l, fmt.Errorf("link field %d out of order", num)
		}
		last = num
		switch num {
		case 1, 2:
			if typ != protowire.BytesType {
				return l, fmt.Errorf("link field %d has wire type %d", num, typ)
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return l, protowire.ParseError(n)
			}
			b = b[n:]
			if num == 1 {
				c, err := cid.Cast(v)
				if err != nil {
					return l, fmt.Errorf("link Hash: %v", err)
				}
				l.Cid = c
			} else {
				l.Name = string(v)
			}
		case 3:
			if typ != protowire.VarintType {
				return l, fmt.Errorf("link Tsize has wire type %d", typ)
			}
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return l, protowire.ParseError(n)
			}
			if v > 1<<63-1 {
				return l, fmt.Errorf("link Tsize overflows")
			}
			b = b[n:]
			l.Tsize = v
		default:
			return l, fmt.Errorf("unknown link field %d", num)
		}
	}
	if !l.Cid.Defined() {
		return l, fmt.Errorf("link without Hash")
	}
	return l, nil
}

// unixfsData is the UnixFS Data message (https://specs.ipfs.tech/unixfs/).
type unixfsData struct {
	typ        int64
	hasType    bool
	data       []byte
	fileSize   uint64
	blockSizes []uint64
	hashType   uint64
	fanout     uint64
}

// decodeUnixFS decodes a UnixFS Data message. Mode and mtime (fields 7 and
// 8) are accepted and ignored, and unknown fields skipped.
func decodeUnixFS(b []byte) (*unixfsData, error) {
	d := &unixfsData{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 4 && typ == protowire.BytesType: // packed blocksizes
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
			for len(v) > 0 {
				x, m := protowire.ConsumeVarint(v)
				if m < 0 {
					return nil, protowire.ParseError(m)
				}
				v = v[m:]
				d.blockSizes = append(d.blockSizes, x)
			}
		case (num == 1 || num == 3 || num == 4 || num == 5 || num == 6 || num == 7) && typ == protowire.VarintType:
			x, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
			switch num {
			case 1:
				d.typ, d.hasType = int64(x), true
			case 3:
				d.fileSize = x
			case 4:
				d.blockSizes = append(d.blockSizes, x)
			case 5:
				d.hashType = x
			case 6:
				d.fanout = x
			}
		case (num == 2 || num == 8) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
			if num == 2 {
				d.data = v
			}
		case num >= 1 && num <= 8:
			return nil, fmt.Errorf("UnixFS field %d with wire type %d", num, typ)
		default: // unknown fields are skipped, as protobuf and go-unixfsnode do
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	if !d.hasType {
		return nil, fmt.Errorf("UnixFS Data without Type")
	}
	for _, s := range d.blockSizes {
		if s > 1<<63-1 {
			return nil, fmt.Errorf("blocksize overflows")
		}
	}
	if d.fileSize > 1<<63-1 {
		return nil, fmt.Errorf("filesize overflows")
	}
	return d, nil
}
