//go:build js && wasm

package node

import (
	"errors"
	"fmt"
	"io"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node/internal/carv1"
)

// CARReader reads a CARv1 stream block by block. In the browser it uses a
// small reader of its own instead of go-car, to keep the service worker's
// wasm within budget. It does not verify blocks: callers use Verify or
// Traverse.
type CARReader struct {
	r *carv1.Reader
}

// NewCARReader reads the header from r. Sections over MaxBlockLen plus a CID
// are refused (ErrTooLarge).
func NewCARReader(r io.Reader) (*CARReader, error) {
	cr, err := carv1.NewReader(r)
	if err != nil {
		return nil, carErr("reading CAR header", err)
	}
	return &CARReader{r: cr}, nil
}

// Roots returns the header's roots.
func (cr *CARReader) Roots() []cid.Cid { return cr.r.Roots() }

// Next returns the next block, or io.EOF after the last one. A truncated
// stream yields io.ErrUnexpectedEOF.
func (cr *CARReader) Next() (Block, error) {
	c, d, err := cr.r.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Block{}, io.EOF
		}
		return Block{}, carErr("reading CAR", err)
	}
	return Block{Cid: c, Data: d}, nil
}

func carErr(op string, err error) error {
	if errors.Is(err, carv1.ErrTooLarge) {
		return fmt.Errorf("%s: %v: %w", op, err, ErrTooLarge)
	}
	return fmt.Errorf("%s: %w", op, err)
}
