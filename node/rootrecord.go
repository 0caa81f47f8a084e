package node

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"time"

	cid "github.com/ipfs/go-cid"
)

// RootRecord says: site Site's content is root CID Root, sequence Seq,
// published at Published; signed by the site key.
//
// Wire form (MarshalBinary), all integers big-endian:
//
//	version   1 byte   = 1
//	site      32 bytes   ed25519 public key
//	seq       8 bytes    uint64, strictly growing per site
//	published 8 bytes    int64, Unix milliseconds
//	cidLen    2 bytes    uint16, ≤ 128
//	cid       cidLen     binary CIDv1
//	sig       64 bytes   ed25519 signature
//
// The signature covers SigningDomain followed by every byte before sig, so a
// record's signature can never be mistaken for any other signed message.
// The encoding has exactly one form per record (deterministic).
type RootRecord struct {
	Site      SiteID
	Seq       uint64
	Published time.Time // millisecond precision
	Root      cid.Cid
	Sig       [ed25519.SignatureSize]byte
}

// SigningDomain separates root-record signatures from every other use of a site key.
const SigningDomain = "hearth root record v1\x00"

// MaxRecordSize bounds a record's wire form in bytes.
const MaxRecordSize = 1 + 32 + 8 + 8 + 2 + 128 + 64

const recordVersion = 1

// NewRootRecord builds and signs a record with key.
func NewRootRecord(key ed25519.PrivateKey, seq uint64, root cid.Cid, published time.Time) (*RootRecord, error) {
	if err := checkCID(root); err != nil {
		return nil, fmt.Errorf("signing root record: %w", err)
	}
	r := &RootRecord{
		Site:      SiteIDOf(key.Public().(ed25519.PublicKey)),
		Seq:       seq,
		Published: time.UnixMilli(published.UnixMilli()),
		Root:      root,
	}
	body := r.body()
	if len(body)+64 > MaxRecordSize {
		return nil, fmt.Errorf("signing root record: CID too long: %w", ErrTooLarge)
	}
	copy(r.Sig[:], ed25519.Sign(key, append([]byte(SigningDomain), body...)))
	return r, nil
}

func (r *RootRecord) body() []byte {
	cb := r.Root.Bytes()
	b := make([]byte, 0, 1+32+8+8+2+len(cb))
	b = append(b, recordVersion)
	b = append(b, r.Site[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Published.UnixMilli()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(cb)))
	return append(b, cb...)
}

// MarshalBinary returns the wire form.
func (r *RootRecord) MarshalBinary() ([]byte, error) {
	return append(r.body(), r.Sig[:]...), nil
}

// Bytes returns the wire form.
func (r *RootRecord) Bytes() []byte { b, _ := r.MarshalBinary(); return b }

// ParseRootRecord decodes a record's wire form and verifies its signature
// under the key it names. It does not check which site the caller expects
// nor the sequence (see RecordLog.Accept). Errors wrap ErrBadRecord or
// ErrBadSignature.
func ParseRootRecord(b []byte) (*RootRecord, error) {
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("root record of %d bytes: %w", len(b), ErrBadRecord)
	}
	const fixed = 1 + 32 + 8 + 8 + 2
	if len(b) < fixed+64 {
		return nil, fmt.Errorf("root record truncated at %d bytes: %w", len(b), ErrBadRecord)
	}
	if b[0] != recordVersion {
		return nil, fmt.Errorf("root record version %d: %w", b[0], ErrBadRecord)
	}
	r := &RootRecord{}
	copy(r.Site[:], b[1:33])
	r.Seq = binary.BigEndian.Uint64(b[33:41])
	r.Published = time.UnixMilli(int64(binary.BigEndian.Uint64(b[41:49])))
	n := int(binary.BigEndian.Uint16(b[49:51]))
	if len(b) != fixed+n+64 {
		return nil, fmt.Errorf("root record: %d bytes, CID length says %d: %w", len(b), fixed+n+64, ErrBadRecord)
	}
	c, err := cid.Cast(b[fixed : fixed+n])
	if err != nil {
		return nil, fmt.Errorf("root record CID: %v: %w", err, ErrBadRecord)
	}
	if err := checkCID(c); err != nil {
		return nil, fmt.Errorf("root record CID: %v: %w", err, ErrBadRecord)
	}
	r.Root = c
	copy(r.Sig[:], b[fixed+n:])
	if !bytes.Equal(r.body(), b[:fixed+n]) { // non-canonical CID encoding
		return nil, fmt.Errorf("root record not canonical: %w", ErrBadRecord)
	}
	if !ed25519.Verify(r.Site.PublicKey(), append([]byte(SigningDomain), b[:fixed+n]...), r.Sig[:]) {
		return nil, fmt.Errorf("root record seq %d for %s: %w", r.Seq, r.Site, ErrBadSignature)
	}
	return r, nil
}

// ParseRootRecordFor parses b and checks it is for site. Errors wrap
// ErrBadRecord, ErrBadSignature or ErrWrongSite.
func ParseRootRecordFor(site SiteID, b []byte) (*RootRecord, error) {
	r, err := ParseRootRecord(b)
	if err != nil {
		return nil, err
	}
	if r.Site != site {
		return nil, fmt.Errorf("record for %s, want %s: %w", r.Site, site, ErrWrongSite)
	}
	return r, nil
}

// CheckNewer returns nil when next may replace cur (cur may be nil): same
// site and a strictly higher sequence. Errors wrap ErrWrongSite or ErrStaleRecord.
func CheckNewer(cur, next *RootRecord) error {
	if cur == nil {
		return nil
	}
	if cur.Site != next.Site {
		return fmt.Errorf("record for %s, want %s: %w", next.Site, cur.Site, ErrWrongSite)
	}
	if next.Seq <= cur.Seq {
		return fmt.Errorf("record seq %d, have %d: %w", next.Seq, cur.Seq, ErrStaleRecord)
	}
	return nil
}
