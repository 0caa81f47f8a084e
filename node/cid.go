package node

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	mhcore "github.com/multiformats/go-multihash/core"
	"github.com/zeebo/blake3"
)

// Multicodec and multihash codes used by Hearth
// (https://github.com/multiformats/multicodec/blob/master/table.csv).
const (
	CodecRaw    = cid.Raw         // 0x55: a leaf holding file bytes
	CodecDagPB  = cid.DagProtobuf // 0x70: a UnixFS node
	HashBlake3  = mh.BLAKE3       // 0x1e
	HashSHA256  = mh.SHA2_256     // 0x12, accepted for reading only
	DigestSize  = 32              // bytes of a BLAKE3-256 digest
	ChunkSize   = 256 << 10       // bytes per file leaf (DESIGN.md)
	MaxLinks    = 174             // links per balanced-layout file node
	MaxBlockLen = 2 << 20         // largest block accepted from anyone: 2 MiB, as Bitswap
)

func init() {
	// go-multihash registers a slower BLAKE3; route its registry (used by
	// boxo's importer and go-cid's Prefix.Sum) to zeebo/blake3 so every code
	// path hashes the same, fast way.
	mhcore.RegisterVariableSize(mh.BLAKE3, func(size int) (hash.Hash, bool) {
		if size != -1 && size != DigestSize {
			return nil, false
		}
		return blake3.New(), true
	})
}

// Sum returns the CIDv1 of data under codec (CodecRaw or CodecDagPB), hashed
// with BLAKE3-256.
func Sum(codec uint64, data []byte) cid.Cid {
	d := blake3.Sum256(data)
	m, err := mh.Encode(d[:], HashBlake3)
	if err != nil { // cannot happen: the code and length are valid
		return cid.Undef
	}
	return cid.NewCidV1(codec, m)
}

// Verify checks that data is the block c names. It returns an error wrapping
// ErrCorrupt on a mismatch, ErrUnsupportedHash for a multihash other than
// BLAKE3-256 or SHA2-256, ErrUnsupportedCodec for a codec other than raw or
// dag-pb and ErrTooLarge for blocks over MaxBlockLen.
func Verify(c cid.Cid, data []byte) error {
	if len(data) > MaxBlockLen {
		return fmt.Errorf("verifying %s: %d bytes: %w", c, len(data), ErrTooLarge)
	}
	if t := c.Type(); t != CodecRaw && t != CodecDagPB {
		return fmt.Errorf("verifying %s: codec 0x%x: %w", c, t, ErrUnsupportedCodec)
	}
	dec, err := mh.Decode(c.Hash())
	if err != nil {
		return fmt.Errorf("verifying %s: %w", c, err)
	}
	var got []byte
	switch {
	case dec.Code == HashBlake3 && dec.Length == DigestSize:
		d := blake3.Sum256(data)
		got = d[:]
	case dec.Code == HashSHA256 && dec.Length == sha256.Size:
		d := sha256.Sum256(data)
		got = d[:]
	default:
		return fmt.Errorf("verifying %s: multihash 0x%x/%d: %w", c, dec.Code, dec.Length, ErrUnsupportedHash)
	}
	if !bytes.Equal(got, dec.Digest) {
		return fmt.Errorf("verifying %s: %w", c, ErrCorrupt)
	}
	return nil
}

// ParseCID parses a CID's text form (any multibase; CIDv0 too) and checks
// that Hearth can verify it. Errors wrap ErrUnsupportedHash or
// ErrUnsupportedCodec, or describe why the text is not a CID.
func ParseCID(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("parsing CID %q: %w", s, err)
	}
	if err := checkCID(c); err != nil {
		return cid.Undef, fmt.Errorf("parsing CID %q: %w", s, err)
	}
	return c, nil
}

func checkCID(c cid.Cid) error {
	if t := c.Type(); t != CodecRaw && t != CodecDagPB {
		return fmt.Errorf("codec 0x%x: %w", t, ErrUnsupportedCodec)
	}
	dec, err := mh.Decode(c.Hash())
	if err != nil {
		return err
	}
	if !(dec.Code == HashBlake3 && dec.Length == DigestSize) && !(dec.Code == HashSHA256 && dec.Length == sha256.Size) {
		return fmt.Errorf("multihash 0x%x/%d: %w", dec.Code, dec.Length, ErrUnsupportedHash)
	}
	return nil
}
