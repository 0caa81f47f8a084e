// Package carv1 reads a CARv1 stream (https://ipld.io/specs/transport/car/carv1/)
// section by section, with no dependency beyond go-cid.
//
// Package node's js/wasm build reads CARs with it instead of go-car, whose
// IPLD machinery costs about 140 KB of brotli'd wasm. It parses only what a CARv1 needs: the varint-prefixed dag-cbor
// header {roots: [CID], version: 1} and varint-prefixed sections of
// CID ‖ block bytes. It does not verify blocks: callers hand them to
// node.Traverse, which does.
package carv1

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	cid "github.com/ipfs/go-cid"
)

// Limits on what a reader accepts, in bytes.
const (
	// MaxHeader bounds the dag-cbor header.
	MaxHeader = 64 << 10
	// MaxSection bounds one section: the largest block Hearth accepts
	// (node.MaxBlockLen, 2 MiB) plus room for its CID.
	MaxSection = 2<<20 + 256
)

var (
	// ErrMalformed: the stream is not a well-formed CARv1.
	ErrMalformed = errors.New("malformed CARv1")
	// ErrTooLarge: a header or section is over its limit.
	ErrTooLarge = errors.New("CAR section too large")
)

// Reader yields the blocks of a CARv1 stream in order.
type Reader struct {
	br    *bufio.Reader
	roots []cid.Cid
}

// NewReader reads and checks the header from r. Errors wrap ErrMalformed,
// ErrTooLarge or the reader's error (io.ErrUnexpectedEOF for a
// truncated header).
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("reading CAR header length: %w", eof(err))
	}
	if n == 0 || n > MaxHeader {
		return nil, fmt.Errorf("CAR header of %d bytes: %w", n, ErrTooLarge)
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, fmt.Errorf("reading CAR header: %w", eof(err))
	}
	roots, err := parseHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("CAR header: %w", err)
	}
	return &Reader{br: br, roots: roots}, nil
}

// Roots returns the header's roots.
func (r *Reader) Roots() []cid.Cid { return r.roots }

// Next returns the next block's CID and bytes; io.EOF after the last one, and
// io.ErrUnexpectedEOF when the stream stops inside a section. The bytes
// are a fresh slice the caller owns.
func (r *Reader) Next() (cid.Cid, []byte, error) {
	n, err := binary.ReadUvarint(r.br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return cid.Undef, nil, io.EOF
		}
		return cid.Undef, nil, fmt.Errorf("reading CAR section length: %w", eof(err))
	}
	if n == 0 || n > MaxSection {
		return cid.Undef, nil, fmt.Errorf("CAR section of %d bytes: %w", n, ErrTooLarge)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return cid.Undef, nil, fmt.Errorf("reading CAR section: %w", eof(err))
	}
	k, c, err := cid.CidFromBytes(buf)
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("CAR section CID: %v: %w", err, ErrMalformed)
	}
	return c, buf[k:], nil
}

// eof turns a clean EOF inside a structure into io.ErrUnexpectedEOF.
func eof(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
