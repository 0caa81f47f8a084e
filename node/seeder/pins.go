package seeder

import (
	"encoding/binary"
	"fmt"
	"sort"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// Pin is a root the seeder holds in full: every block of its DAG was
// durably stored before the pin was written.
type Pin struct {
	Seq   uint64  // the root record's sequence
	Root  cid.Cid // the root record's root
	Bytes int64   // the DAG's size: the sum of its distinct blocks' lengths
}

// Pins live in the store's metadata, beside the blocks:
//
//	key   "pin/" + site ID text + "/" + sequence as 20 decimal digits
//	value 8-byte big-endian DAG size in bytes, then the binary root CID
//
// A pin is written (synced) only after Replicator.Replicate returned, that
// is after the whole DAG is durably stored, and deleted (synced) before
// garbage collection deletes any of its blocks; so after a crash at any
// point a pin never names a root with missing blocks.
func pinPrefix(site node.SiteID) string { return "pin/" + site.String() + "/" }

func pinKey(site node.SiteID, seq uint64) string { return fmt.Sprintf("%s%020d", pinPrefix(site), seq) }

func encodePin(p Pin) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(p.Bytes))
	return append(b, p.Root.Bytes()...)
}

func decodePin(key string, prefix string, v []byte) (Pin, error) {
	var p Pin
	if _, err := fmt.Sscanf(key[len(prefix):], "%d", &p.Seq); err != nil {
		return p, fmt.Errorf("pin key %q: %w", key, err)
	}
	if len(v) < 9 {
		return p, fmt.Errorf("pin %q: %d bytes: %w", key, len(v), node.ErrBadRecord)
	}
	p.Bytes = int64(binary.BigEndian.Uint64(v))
	c, err := cid.Cast(v[8:])
	if err != nil {
		return p, fmt.Errorf("pin %q: %w", key, err)
	}
	p.Root = c
	return p, nil
}

// loadPins returns site's pins, newest first. Unreadable entries are skipped.
func loadPins(m node.MetaStore, site node.SiteID) []Pin {
	prefix := pinPrefix(site)
	var out []Pin
	for k, v := range m.MetaPrefix(prefix) {
		if p, err := decodePin(k, prefix, v); err == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq > out[j].Seq })
	return out
}
