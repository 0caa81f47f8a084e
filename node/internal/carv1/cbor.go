package carv1

import (
	"encoding/binary"
	"fmt"

	cid "github.com/ipfs/go-cid"
)

// parseHeader decodes the dag-cbor CARv1 header, a map with "version": 1
// and "roots": an array of CIDs (tag 42 over a byte string whose first byte
// is the identity multibase prefix 0x00). Other keys are skipped.
func parseHeader(b []byte) ([]cid.Cid, error) {
	d := &decoder{b: b}
	major, n, err := d.head()
	if err != nil {
		return nil, err
	}
	if major != majMap {
		return nil, fmt.Errorf("header is major type %d, not a map: %w", major, ErrMalformed)
	}
	var roots []cid.Cid
	version, haveRoots := uint64(0), false
	for i := uint64(0); i < n; i++ {
		key, err := d.text()
		if err != nil {
			return nil, err
		}
		switch key {
		case "version":
			m, v, err := d.head()
			if err != nil {
				return nil, err
			}
			if m != majUint {
				return nil, fmt.Errorf("version of major type %d: %w", m, ErrMalformed)
			}
			version = v
		case "roots":
			m, cnt, err := d.head()
			if err != nil {
				return nil, err
			}
			if m != majArray || cnt > 1024 {
				return nil, fmt.Errorf("roots: major type %d, %d items: %w", m, cnt, ErrMalformed)
			}
			for j := uint64(0); j < cnt; j++ {
				c, err := d.link()
				if err != nil {
					return nil, err
				}
				roots = append(roots, c)
			}
			haveRoots = true
		default:
			if err := d.skip(0); err != nil {
				return nil, err
			}
		}
	}
	if d.off != len(d.b) {
		return nil, fmt.Errorf("%d trailing bytes: %w", len(d.b)-d.off, ErrMalformed)
	}
	if version != 1 {
		return nil, fmt.Errorf("version %d, want 1: %w", version, ErrMalformed)
	}
	if !haveRoots {
		return nil, fmt.Errorf("no roots: %w", ErrMalformed)
	}
	return roots, nil
}

// CBOR major types (RFC 8949 §3.1).
const (
	majUint   = 0
	majNeg    = 1
	majBytes  = 2
	majText   = 3
	majArray  = 4
	majMap    = 5
	majTag    = 6
	majSimple = 7
)

type decoder struct {
	b   []byte
	off int
}

// head reads an item head: major type and argument. Indefinite lengths are
// refused, as dag-cbor forbids them.
func (d *decoder) head() (byte, uint64, error) {
	if d.off >= len(d.b) {
		return 0, 0, fmt.Errorf("truncated: %w", ErrMalformed)
	}
	ib := d.b[d.off]
	d.off++
	major, info := ib>>5, ib&0x1f
	var size int
	switch {
	case info < 24:
		return major, uint64(info), nil
	case info == 24:
		size = 1
	case info == 25:
		size = 2
	case info == 26:
		size = 4
	case info == 27:
		size = 8
	default:
		return 0, 0, fmt.Errorf("additional info %d: %w", info, ErrMalformed)
	}
	if len(d.b)-d.off < size {
		return 0, 0, fmt.Errorf("truncated: %w", ErrMalformed)
	}
	var v uint64
	switch size {
	case 1:
		v = uint64(d.b[d.off])
	case 2:
		v = uint64(binary.BigEndian.Uint16(d.b[d.off:]))
	case 4:
		v = uint64(binary.BigEndian.Uint32(d.b[d.off:]))
	case 8:
		v = binary.BigEndian.Uint64(d.b[d.off:])
	}
	d.off += size
	return major, v, nil
}

// bytesOf reads n payload bytes.
func (d *decoder) bytesOf(n uint64) ([]byte, error) {
	if n > uint64(len(d.b)-d.off) {
		return nil, fmt.Errorf("truncated string: %w", ErrMalformed)
	}
	p := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return p, nil
}

func (d *decoder) text() (string, error) {
	m, n, err := d.head()
	if err != nil {
		return "", err
	}
	if m != majText {
		return "", fmt.Errorf("map key of major type %d: %w", m, ErrMalformed)
	}
	p, err := d.bytesOf(n)
	return string(p), err
}

// link reads tag 42 over a byte string: a CID with the 0x00 prefix.
func (d *decoder) link() (cid.Cid, error) {
	m, tag, err := d.head()
	if err != nil {
		return cid.Undef, err
	}
	if m != majTag || tag != 42 {
		return cid.Undef, fmt.Errorf("root is not a CID link: %w", ErrMalformed)
	}
	m, n, err := d.head()
	if err != nil {
		return cid.Undef, err
	}
	if m != majBytes {
		return cid.Undef, fmt.Errorf("CID link over major type %d: %w", m, ErrMalformed)
	}
	p, err := d.bytesOf(n)
	if err != nil {
		return cid.Undef, err
	}
	if len(p) < 2 || p[0] != 0 {
		return cid.Undef, fmt.Errorf("CID link without identity prefix: %w", ErrMalformed)
	}
	k, c, err := cid.CidFromBytes(p[1:])
	if err != nil || k != len(p)-1 {
		return cid.Undef, fmt.Errorf("root CID: %v: %w", err, ErrMalformed)
	}
	return c, nil
}

// skip skips one item, bounded in nesting depth.
func (d *decoder) skip(depth int) error {
	if depth > 16 {
		return fmt.Errorf("nesting too deep: %w", ErrMalformed)
	}
	m, n, err := d.head()
	if err != nil {
		return err
	}
	switch m {
	case majUint, majNeg, majSimple:
		return nil
	case majBytes, majText:
		_, err := d.bytesOf(n)
		return err
	case majTag:
		return d.skip(depth + 1)
	case majArray, majMap:
		items := n
		if m == majMap {
			items *= 2
		}
		if items > uint64(len(d.b)) { // every item takes at least a byte
			return fmt.Errorf("%d items: %w", items, ErrMalformed)
		}
		for i := uint64(0); i < items; i++ {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
	}
	return nil
}
