package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"iter"
	"sort"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
)

// MetaStore is a small durable key-value store for metadata kept beside
// blocks (pins, root records). pebblestore.Store implements it; so does MemMeta.
type MetaStore interface {
	// GetMeta returns the value under key or an error wrapping ErrNotFound.
	GetMeta(key string) ([]byte, error)
	// PutMeta durably sets key.
	PutMeta(key string, val []byte) error
	// DeleteMeta durably removes key.
	DeleteMeta(key string) error
	// MetaPrefix yields keys with the prefix in byte order, with values.
	MetaPrefix(prefix string) iter.Seq2[string, []byte]
}

// RecordLog keeps a site's root records, its revision log, in a MetaStore.
// It only ever accepts a record that verifies and whose sequence is above
// the latest held (no rollback). Safe for concurrent use.
//
// Keys: "rec/" + site ID text + "/" + sequence as 20 decimal digits.
type RecordLog struct {
	mu sync.Mutex
	m  MetaStore
}

// NewRecordLog returns a log over m.
func NewRecordLog(m MetaStore) *RecordLog { return &RecordLog{m: m} }

func recPrefix(site SiteID) string { return "rec/" + site.String() + "/" }

// Latest returns the newest record for site, or an error wrapping ErrNotFound.
func (l *RecordLog) Latest(site SiteID) (*RootRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.latest(site)
}

func (l *RecordLog) latest(site SiteID) (*RootRecord, error) {
	var last []byte
	for _, v := range l.m.MetaPrefix(recPrefix(site)) {
		last = v
	}
	if last == nil {
		return nil, fmt.Errorf("no root record for %s: %w", site, ErrNotFound)
	}
	return ParseRootRecordFor(site, last)
}

// Accept stores r if it is newer than the latest record of its site.
// Errors wrap ErrStaleRecord (not newer) or the store's error.
func (l *RecordLog) Accept(r *RootRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, err := l.latest(r.Site)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := CheckNewer(cur, r); err != nil {
		return err
	}
	return l.m.PutMeta(fmt.Sprintf("%s%020d", recPrefix(r.Site), r.Seq), r.Bytes())
}

// History returns every record held for site, oldest first. Records that no
// longer verify are skipped.
func (l *RecordLog) History(site SiteID) []*RootRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*RootRecord
	for _, v := range l.m.MetaPrefix(recPrefix(site)) {
		if r, err := ParseRootRecordFor(site, v); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// MemMeta is a MetaStore in memory.
type MemMeta struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewMemMeta returns an empty MemMeta.
func NewMemMeta() *MemMeta { return &MemMeta{m: map[string][]byte{}} }

// GetMeta implements MetaStore.
func (s *MemMeta) GetMeta(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, fmt.Errorf("metadata %q: %w", key, ErrNotFound)
	}
	return v, nil
}

// PutMeta implements MetaStore.
func (s *MemMeta) PutMeta(key string, val []byte) error {
	s.mu.Lock()
	s.m[key] = append([]byte(nil), val...)
	s.mu.Unlock()
	return nil
}

// DeleteMeta implements MetaStore.
func (s *MemMeta) DeleteMeta(key string) error {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	return nil
}

// MetaPrefix implements MetaStore.
func (s *MemMeta) MetaPrefix(prefix string) iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		s.mu.Lock()
		var keys []string
		for k := range s.m {
			if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
				keys = append(keys, k)
			}
		}
		vals := make(map[string][]byte, len(keys))
		for _, k := range keys {
			vals[k] = s.m[k]
		}
		s.mu.Unlock()
		sort.Strings(keys)
		for _, k := range keys {
			if !yield(k, vals[k]) {
				return
			}
		}
	}
}

// SignNext signs root with key at the sequence after the latest record of
// the key's site (1 for the first), stores the record and returns it.
// Sequences stay strictly growing even if the clock goes back.
func (l *RecordLog) SignNext(key ed25519.PrivateKey, root cid.Cid, now time.Time) (*RootRecord, error) {
	site := SiteIDOf(key.Public().(ed25519.PublicKey))
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := uint64(1)
	cur, err := l.latest(site)
	switch {
	case err == nil:
		seq = cur.Seq + 1
	case !errors.Is(err, ErrNotFound):
		return nil, err
	}
	r, err := NewRootRecord(key, seq, root, now)
	if err != nil {
		return nil, err
	}
	if err := l.m.PutMeta(fmt.Sprintf("%s%020d", recPrefix(site), r.Seq), r.Bytes()); err != nil {
		return nil, err
	}
	return r, nil
}
