package node

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
)

// NodeID is a node's ed25519 public key: the key a seeder or a browser tab
// proves to the relay. It is a different identity from a site's key
// (SiteID), though both share one text form ("b" + base32 of the
// multicodec-prefixed key, 56 characters).
type NodeID [ed25519.PublicKeySize]byte

// NodeIDOf returns the NodeID of pub.
func NodeIDOf(pub ed25519.PublicKey) NodeID {
	var n NodeID
	copy(n[:], pub)
	return n
}

// PublicKey returns the key as an ed25519.PublicKey.
func (n NodeID) PublicKey() ed25519.PublicKey { return ed25519.PublicKey(n[:]) }

// String returns the text form.
func (n NodeID) String() string { return SiteID(n).String() }

// Compare orders node IDs by their bytes.
func (n NodeID) Compare(o NodeID) int { return bytes.Compare(n[:], o[:]) }

// MarshalText implements encoding.TextMarshaler.
func (n NodeID) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (n *NodeID) UnmarshalText(b []byte) error {
	v, err := ParseNodeID(string(b))
	if err != nil {
		return err
	}
	*n = v
	return nil
}

// ParseNodeID parses the text form. Errors wrap ErrBadSiteID (the text form
// is the same as a site ID's).
func ParseNodeID(txt string) (NodeID, error) {
	s, err := ParseSiteID(txt)
	if err != nil {
		return NodeID{}, fmt.Errorf("node ID: %w", err)
	}
	return NodeID(s), nil
}
