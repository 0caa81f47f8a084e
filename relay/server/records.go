package relayserver

import (
	"errors"
	"fmt"
	"sync"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
)

// evictScan bounds how far from the least recently published end the store
// looks for a record nobody subscribes to when it is full.
const evictScan = 64

// recordStore keeps the latest root record and member list of each site and
// who subscribes to it. Sends happen with mu held so that every subscriber sees one site's
// records in sequence order.
type recordStore struct {
	mu      sync.Mutex
	max     int
	sites   map[node.SiteID]*recordSite
	stored  int         // sites holding a record or a member list
	lruHead *recordSite // most recently published
	lruTail *recordSite
}

type recordSite struct {
	site       node.SiteID
	rec        *node.RootRecord
	msg        []byte // the record message sent to subscribers
	members    *node.MemberList
	membersMsg []byte // the members message sent to subscribers
	subs       map[*conn]struct{}
	prev, next *recordSite // LRU of sites holding a record
}

func newRecordStore(max int) *recordStore {
	return &recordStore{max: max, sites: make(map[node.SiteID]*recordSite)}
}

func (s *recordStore) lruRemove(rs *recordSite) {
	if rs.prev != nil {
		rs.prev.next = rs.next
	} else {
		s.lruHead = rs.next
	}
	if rs.next != nil {
		rs.next.prev = rs.prev
	} else {
		s.lruTail = rs.prev
	}
	rs.prev, rs.next = nil, nil
}

func (s *recordStore) lruPushFront(rs *recordSite) {
	rs.prev, rs.next = nil, s.lruHead
	if s.lruHead != nil {
		s.lruHead.prev = rs
	} else {
		s.lruTail = rs
	}
	s.lruHead = rs
}

// evictLocked forgets the least recently published record of a site without
// subscribers. It reports false when there is none near the LRU end.
func (s *recordStore) evictLocked() bool {
	rs := s.lruTail
	for i := 0; i < evictScan && rs != nil; i, rs = i+1, rs.prev {
		if len(rs.subs) == 0 {
			s.lruRemove(rs)
			delete(s.sites, rs.site)
			s.stored--
			return true
		}
	}
	return false
}

// publish checks raw (signature, then sequence against the latest held),
// stores it and sends it to the site's subscribers. Errors wrap
// relay.ErrBadRecord, relay.ErrStaleRecord or relay.ErrRelayFull.
func (s *recordStore) publish(raw []byte) (*node.RootRecord, error) {
	rec, err := node.ParseRootRecord(raw) // verifies the signature; outside the lock
	if err != nil {
		return nil, fmt.Errorf("publish: %v: %w", err, relay.ErrBadRecord)
	}
	msg, err := relay.Encode(&relay.Message{Type: relay.TypeRecord, Site: rec.Site.String(), Record: raw})
	if err != nil {
		return nil, fmt.Errorf("publish: %v: %w", err, relay.ErrInternal)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.sites[rec.Site]
	if rs != nil && rs.rec != nil {
		if err := node.CheckNewer(rs.rec, rec); err != nil {
			return nil, publishErr(err)
		}
	}
	rs, err = s.slotLocked(rs, rec.Site)
	if err != nil {
		return nil, err
	}
	rs.rec, rs.msg = rec, msg
	for c := range rs.subs {
		c.send(msg)
	}
	return rec, nil
}

func publishErr(err error) error {
	if errors.Is(err, node.ErrStaleRecord) {
		return fmt.Errorf("publish: %v: %w", err, relay.ErrStaleRecord)
	}
	return fmt.Errorf("publish: %v: %w", err, relay.ErrBadRecord)
}

// slotLocked makes rs (nil: none yet) the most recently published site,
// taking a slot for it if it held nothing. Errors wrap relay.ErrRelayFull.
func (s *recordStore) slotLocked(rs *recordSite, site node.SiteID) (*recordSite, error) {
	if rs != nil && (rs.rec != nil || rs.members != nil) {
		s.lruRemove(rs)
	} else {
		if s.stored >= s.max && !s.evictLocked() {
			return nil, fmt.Errorf("publish: %d sites hold records: %w", s.stored, relay.ErrRelayFull)
		}
		if rs == nil {
			rs = &recordSite{site: site}
			s.sites[site] = rs
		}
		s.stored++
	}
	s.lruPushFront(rs)
	return rs, nil
}

// publishMembers checks raw (signature, then sequence against the list
// held), stores it and sends it to the site's subscribers. From then on find
// follows it. Errors wrap relay.ErrBadRecord, relay.ErrStaleRecord or
// relay.ErrRelayFull.
func (s *recordStore) publishMembers(raw []byte) (*node.MemberList, error) {
	l, err := node.ParseMemberList(raw) // verifies the signature; outside the lock
	if err != nil {
		return nil, fmt.Errorf("publish: %v: %w", err, relay.ErrBadRecord)
	}
	msg, err := relay.Encode(&relay.Message{Type: relay.TypeMembers, Site: l.Site.String(), Members: raw})
	if err != nil {
		return nil, fmt.Errorf("publish: %v: %w", err, relay.ErrInternal)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.sites[l.Site]
	if rs != nil && rs.members != nil {
		if err := node.CheckNewerMembers(rs.members, l); err != nil {
			return nil, publishErr(err)
		}
	}
	rs, err = s.slotLocked(rs, l.Site)
	if err != nil {
		return nil, err
	}
	rs.members, rs.membersMsg = l, msg
	for c := range rs.subs {
		c.send(msg)
	}
	return l, nil
}

// memberList returns the member list held for site, or nil.
func (s *recordStore) memberList(site node.SiteID) *node.MemberList {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rs := s.sites[site]; rs != nil {
		return rs.members
	}
	return nil
}

// subscribe adds c to site's subscribers, sends ok (with id) and then the
// latest record, if any. Errors wrap relay.ErrTooManySubscriptions.
func (s *recordStore) subscribe(c *conn, site node.SiteID, max int, ok []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.sites[site]
	if rs != nil {
		if _, dup := rs.subs[c]; dup {
			c.send(ok)
			rs.sendLatest(c)
			return nil
		}
	}
	if len(c.subs) >= max {
		return fmt.Errorf("subscribe to %s: %d held: %w", site, len(c.subs), relay.ErrTooManySubscriptions)
	}
	if rs == nil {
		rs = &recordSite{site: site}
		s.sites[site] = rs
	}
	if rs.subs == nil {
		rs.subs = make(map[*conn]struct{})
	}
	rs.subs[c] = struct{}{}
	c.subs = append(c.subs, site)
	c.send(ok)
	rs.sendLatest(c)
	return nil
}

// sendLatest sends c the site's member list and latest record, if held.
func (rs *recordSite) sendLatest(c *conn) {
	if rs.members != nil {
		c.send(rs.membersMsg)
	}
	if rs.rec != nil {
		c.send(rs.msg)
	}
}

// unsubscribe removes c from site's subscribers; it is not an error if c
// was not subscribed.
func (s *recordStore) unsubscribe(c *conn, site node.SiteID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range c.subs {
		if x == site {
			c.subs = append(c.subs[:i], c.subs[i+1:]...)
			s.dropSubLocked(c, site)
			return
		}
	}
}

// unsubscribeAll removes c from every site it subscribes to.
func (s *recordStore) unsubscribeAll(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, site := range c.subs {
		s.dropSubLocked(c, site)
	}
	c.subs = nil
}

func (s *recordStore) dropSubLocked(c *conn, site node.SiteID) {
	rs := s.sites[site]
	if rs == nil {
		return
	}
	delete(rs.subs, c)
	if len(rs.subs) == 0 && rs.rec == nil && rs.members == nil {
		delete(s.sites, site)
	}
}

// count returns the number of sites holding a record or a member list.
func (s *recordStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stored
}
