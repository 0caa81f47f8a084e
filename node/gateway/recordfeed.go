package gateway

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// RecordFeed is one site's revision log (a node.RecordLog) plus a signal
// that wakes subscribers when a newer record is accepted. It caches the
// latest record, so serving it costs no store read. All writes to the
// site's records must go through the feed. Safe for concurrent use.
type RecordFeed struct {
	site node.SiteID
	log  *node.RecordLog

	mu      sync.Mutex
	latest  *node.RootRecord
	changed chan struct{}
}

// NewRecordFeed returns the feed of site over log, loading the latest
// record. Errors are the store's.
func NewRecordFeed(site node.SiteID, log *node.RecordLog) (*RecordFeed, error) {
	f := &RecordFeed{site: site, log: log, changed: make(chan struct{})}
	r, err := log.Latest(site)
	switch {
	case err == nil:
		f.latest = r
	case !errors.Is(err, node.ErrNotFound):
		return nil, fmt.Errorf("loading latest record of %s: %w", site, err)
	}
	return f, nil
}

// Site returns the feed's site.
func (f *RecordFeed) Site() node.SiteID { return f.site }

// Latest returns the newest record, or nil before the first.
func (f *RecordFeed) Latest() *node.RootRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latest
}

// History returns every record held, oldest first.
func (f *RecordFeed) History() []*node.RootRecord { return f.log.History(f.site) }

// Changed returns a channel that is closed when the next record is
// accepted. Take it before reading Latest so that no record is missed.
func (f *RecordFeed) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// Accept stores r durably and wakes subscribers if r is for the feed's site
// and newer than the latest record. r must have been verified (by
// node.ParseRootRecord). Errors wrap node.ErrWrongSite, node.ErrStaleRecord
// or the store's error.
func (f *RecordFeed) Accept(r *node.RootRecord) error {
	if r.Site != f.site {
		return fmt.Errorf("record for %s, want %s: %w", r.Site, f.site, node.ErrWrongSite)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := node.CheckNewer(f.latest, r); err != nil {
		return err
	}
	if err := f.log.Accept(r); err != nil {
		return err
	}
	f.publishLocked(r)
	return nil
}

// SignNext signs root as the next record with the site key, stores it and
// wakes subscribers. key must be the site's.
func (f *RecordFeed) SignNext(key ed25519.PrivateKey, root cid.Cid, now time.Time) (*node.RootRecord, error) {
	if node.SiteIDOf(key.Public().(ed25519.PublicKey)) != f.site {
		return nil, fmt.Errorf("signing for %s with another key: %w", f.site, node.ErrWrongSite)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.log.SignNext(key, root, now)
	if err != nil {
		return nil, err
	}
	f.publishLocked(r)
	return r, nil
}

func (f *RecordFeed) publishLocked(r *node.RootRecord) {
	f.latest = r
	close(f.changed)
	f.changed = make(chan struct{})
}
