package node

import (
	"crypto/ed25519"
	"encoding/base32"
	"fmt"
	"strings"
)

// SiteID is a site's (or a node's) ed25519 public key.
//
// Text form: the multibase base32 form of the multicodec-prefixed key, as
// did:key does but lower-case base32 so it fits a DNS label: "b" followed by
// RFC 4648 base32 (lower case, no padding) of 0xed 0x01 (the varint of
// multicodec ed25519-pub) and the 32 key bytes; 56 characters in all, e.g.
// "b5uaxxxx…". ParseSiteID accepts upper case too.
type SiteID [ed25519.PublicKeySize]byte

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// multicodec ed25519-pub (0xed) as a varint.
var ed25519PubPrefix = []byte{0xed, 0x01}

// SiteIDOf returns the SiteID of pub.
func SiteIDOf(pub ed25519.PublicKey) SiteID {
	var s SiteID
	copy(s[:], pub)
	return s
}

// PublicKey returns the key as an ed25519.PublicKey.
func (s SiteID) PublicKey() ed25519.PublicKey { return ed25519.PublicKey(s[:]) }

// String returns the text form.
func (s SiteID) String() string {
	b := append(append([]byte{}, ed25519PubPrefix...), s[:]...)
	return "b" + strings.ToLower(b32.EncodeToString(b))
}

// MarshalText implements encoding.TextMarshaler.
func (s SiteID) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *SiteID) UnmarshalText(b []byte) error {
	v, err := ParseSiteID(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSiteID parses the text form. Errors wrap ErrBadSiteID.
func ParseSiteID(txt string) (SiteID, error) {
	var s SiteID
	if len(txt) < 2 || (txt[0] != 'b' && txt[0] != 'B') {
		return s, fmt.Errorf("site ID %q: want multibase base32 ('b' prefix): %w", txt, ErrBadSiteID)
	}
	raw, err := b32.DecodeString(strings.ToUpper(txt[1:]))
	if err != nil {
		return s, fmt.Errorf("site ID %q: %v: %w", txt, err, ErrBadSiteID)
	}
	if len(raw) != 2+ed25519.PublicKeySize || raw[0] != ed25519PubPrefix[0] || raw[1] != ed25519PubPrefix[1] {
		return s, fmt.Errorf("site ID %q: not an ed25519 public key: %w", txt, ErrBadSiteID)
	}
	copy(s[:], raw[2:])
	return s, nil
}
