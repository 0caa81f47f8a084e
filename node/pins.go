package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	cid "github.com/ipfs/go-cid"
)

// Pin is a root whose DAG a store holds in full and keeps through garbage
// collection (CollectGarbage): every block of the DAG was durably stored
// before the pin was written.
type Pin struct {
	Seq   uint64  // the root record's sequence; 0 for a root pinned by CID
	Root  cid.Cid // the root: a root record's, for a site's pin
	Bytes int64   // the DAG's size: the sum of its distinct blocks' lengths
}

// Pins live in the store's metadata, beside the blocks:
//
//	key   "pin/" + site ID text + "/" + sequence as 20 decimal digits
//	      (a site's root), or "pin/cid/" + CID text (a root pinned alone)
//	value 8-byte big-endian DAG size in bytes, then the binary root CID
//
// Whoever pins writes the pin (synced) only after the whole DAG is durably
// stored, and deletes it (synced) before garbage collection deletes any of
// its blocks; so after a crash at any point a pin never names a root with
// missing blocks.
const pinRoot = "pin/"

func pinPrefix(site SiteID) string { return pinRoot + site.String() + "/" }

// PinKey is the metadata key of site's pin at sequence seq.
func PinKey(site SiteID, seq uint64) string { return fmt.Sprintf("%s%020d", pinPrefix(site), seq) }

// cidPinKey is the metadata key of a root pinned by CID alone.
func cidPinKey(c cid.Cid) string { return pinRoot + "cid/" + c.String() }

func encodePin(p Pin) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(p.Bytes))
	return append(b, p.Root.Bytes()...)
}

// decodePinValue decodes a pin's value: its size and root.
func decodePinValue(key string, v []byte) (Pin, error) {
	var p Pin
	if len(v) < 9 {
		return p, fmt.Errorf("pin %q: %d bytes: %w", key, len(v), ErrBadPin)
	}
	p.Bytes = int64(binary.BigEndian.Uint64(v))
	c, err := cid.Cast(v[8:])
	if err != nil {
		return p, fmt.Errorf("pin %q: %w: %w", key, ErrBadPin, err)
	}
	p.Root = c
	return p, nil
}

// PutPin durably pins p.Root as site's root at p.Seq. Call it only once
// the whole DAG under p.Root is durably stored, and remove the pin
// (DeletePin) before deleting any of its blocks: then, after a crash at
// any point, no pin names a root with missing blocks.
func PutPin(m MetaStore, site SiteID, p Pin) error {
	return m.PutMeta(PinKey(site, p.Seq), encodePin(p))
}

// DeletePin durably removes site's pin at seq.
func DeletePin(m MetaStore, site SiteID, seq uint64) error {
	return m.DeleteMeta(PinKey(site, seq))
}

// PinCID durably pins root (a DAG of size bytes) by its CID alone, outside
// any site: what `hearth publish` without a key imports.
func PinCID(m MetaStore, root cid.Cid, size int64) error {
	return m.PutMeta(cidPinKey(root), encodePin(Pin{Root: root, Bytes: size}))
}

// PinWhole pins root by CID (PinCID) if its DAG is whole in gs, and
// returns the DAG's size in bytes. Errors: a missing inner node wraps
// ErrNotFound (nothing is pinned), or the store's.
func PinWhole(ctx context.Context, gs GCStore, root cid.Cid) (int64, error) {
	size, err := MarkDAG(ctx, gs, root, nil, make(map[string]struct{}))
	if err != nil {
		return 0, fmt.Errorf("pinning %s: %w", root, err)
	}
	return size, PinCID(gs, root, size)
}

// LoadPins returns site's pins, newest first. Unreadable entries are
// skipped (ListPins reports them).
func LoadPins(m MetaStore, site SiteID) []Pin {
	prefix := pinPrefix(site)
	var out []Pin
	for k, v := range m.MetaPrefix(prefix) { // keys sort by sequence
		p, err := decodePinValue(k, v)
		if err != nil {
			continue
		}
		if _, err := fmt.Sscanf(k[len(prefix):], "%d", &p.Seq); err != nil {
			continue
		}
		out = append(out, p)
	}
	slices.Reverse(out)
	return out
}

// PinEntry is one pin of a store, as ListPins reports it.
type PinEntry struct {
	// Site is the site whose root it is; the zero SiteID for a root pinned
	// by CID (PinCID).
	Site SiteID
	Pin
}

// ByCID reports whether e is a root pinned by CID alone.
func (e PinEntry) ByCID() bool { return e.Site == SiteID{} }

// ListPins returns every pin in m, of every site and by CID, in key order.
// An unreadable pin is an error wrapping ErrBadPin, so that garbage
// collection never runs without knowing every root to keep.
func ListPins(m MetaStore) ([]PinEntry, error) {
	var out []PinEntry
	for k, v := range m.MetaPrefix(pinRoot) {
		owner, rest, ok := strings.Cut(k[len(pinRoot):], "/")
		if !ok || rest == "" || strings.Contains(rest, "/") {
			return nil, fmt.Errorf("pin key %q: %w", k, ErrBadPin)
		}
		p, err := decodePinValue(k, v)
		if err != nil {
			return nil, err
		}
		e := PinEntry{Pin: p}
		if owner != "cid" {
			if e.Site, err = ParseSiteID(owner); err != nil {
				return nil, fmt.Errorf("pin key %q: %w: %w", k, ErrBadPin, err)
			}
			if _, err := fmt.Sscanf(rest, "%d", &e.Seq); err != nil {
				return nil, fmt.Errorf("pin key %q: %w: %w", k, ErrBadPin, err)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// UnpinCID durably removes the pin of root by CID (PinCID); the blocks go
// at the next garbage collection unless something else keeps them. It
// reports whether there was such a pin.
func UnpinCID(m MetaStore, root cid.Cid) (bool, error) {
	if _, err := m.GetMeta(cidPinKey(root)); err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return true, m.DeleteMeta(cidPinKey(root))
}

// AllPins returns the roots of every pin in m (ListPins).
func AllPins(m MetaStore) ([]cid.Cid, error) {
	ps, err := ListPins(m)
	if err != nil {
		return nil, err
	}
	out := make([]cid.Cid, len(ps))
	for i, p := range ps {
		out[i] = p.Root
	}
	return out, nil
}
