package relayserver

import (
	"fmt"
	"sync"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
)

// maxIntroductions bounds the peers one connection remembers having found
// (a ring: the oldest introduction is forgotten first). Signalling is
// allowed between two peers when either remembers the other.
const maxIntroductions = 256

// registry holds the authenticated peers, their announcements and who found
// whom. One RWMutex guards it all: find reorders lists and takes it for
// writing; signal, the hot path, only reads.
type registry struct {
	mu     sync.RWMutex
	peers  map[node.SiteID]*conn
	byText map[string]*conn // the same, by canonical key text: signal's lookup without parsing
	sites  map[node.SiteID]*siteSet
	nAnn   int // announcements held, for the gauge
}

// Tiers of a site's announcers, in the order find hands them out.
const (
	tierSeeder = iota
	tierTab
	numTiers
)

// siteSet is the announcers of one site. Announcers with a capacity above 0
// sit in their tier's list, least recently handed out first; find takes from
// the front and moves what it took to the back.
type siteSet struct {
	tiers [numTiers]annList
	n     int // all announcements of the site, listed or not
}

type annList struct{ head, tail *announcement }

// announcement is one (peer, site) pair.
type announcement struct {
	c          *conn
	site       node.SiteID
	roots      []string
	tier       int
	listed     bool
	prev, next *announcement
}

func newRegistry() *registry {
	return &registry{
		peers:  make(map[node.SiteID]*conn),
		byText: make(map[string]*conn),
		sites:  make(map[node.SiteID]*siteSet),
	}
}

func (l *annList) pushFront(a *announcement) {
	a.prev, a.next = nil, l.head
	if l.head != nil {
		l.head.prev = a
	} else {
		l.tail = a
	}
	l.head = a
}

func (l *annList) pushBack(a *announcement) {
	a.prev, a.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = a
	} else {
		l.head = a
	}
	l.tail = a
}

func (l *annList) remove(a *announcement) {
	if a.prev != nil {
		a.prev.next = a.next
	} else {
		l.head = a.next
	}
	if a.next != nil {
		a.next.prev = a.prev
	} else {
		l.tail = a.prev
	}
	a.prev, a.next = nil, nil
}

// register makes c the peer for its key and returns the connection it
// replaces, if any.
func (r *registry) register(c *conn) (old *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old = r.peers[c.key]
	r.peers[c.key] = c
	r.byText[c.keyText] = c
	return old
}

// remove withdraws c's announcements and, if c is still the peer for its
// key, forgets it.
func (r *registry) remove(c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.withdrawLocked(c)
	if r.peers[c.key] == c {
		delete(r.peers, c.key)
		delete(r.byText, c.keyText)
	}
	c.intro = nil
}

func (r *registry) withdrawLocked(c *conn) {
	for _, a := range c.anns {
		ss := r.sites[a.site]
		if a.listed {
			ss.tiers[a.tier].remove(a)
		}
		ss.n--
		if ss.n == 0 {
			delete(r.sites, a.site)
		}
	}
	r.nAnn -= len(c.anns)
	c.anns = nil
}

// announce replaces c's announcements. sites are parsed and checked; roots
// are canonical CID text.
func (r *registry) announce(c *conn, role relay.Role, capacity int, sites []node.SiteID, roots [][]string) {
	tier := tierTab
	if role == relay.RoleSeeder {
		tier = tierSeeder
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.withdrawLocked(c)
	c.role, c.capacity = role, capacity
	if len(sites) == 0 {
		return
	}
	c.anns = make([]*announcement, len(sites))
	for i, site := range sites {
		a := &announcement{c: c, site: site, roots: roots[i], tier: tier, listed: capacity > 0}
		c.anns[i] = a
		ss := r.sites[site]
		if ss == nil {
			ss = &siteSet{}
			r.sites[site] = ss
		}
		ss.n++
		if a.listed {
			// A newcomer has never been handed out: it goes first.
			ss.tiers[tier].pushFront(a)
		}
	}
	r.nAnn += len(sites)
}

// find returns up to n announcers of site for asker: seeders before tabs,
// within a tier the least recently handed out first, skipping asker and the
// peers in exclude. With a member list (nil: none), a members-only site
// hands out members only and a members-first site members before everyone
// else; then the walk is bounded by the site's announcers rather than by n.
// It records the introductions so that the pairs may signal.
func (r *registry) find(asker *conn, site node.SiteID, n int, exclude map[node.SiteID]struct{}, members *node.MemberList) []relay.PeerInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	ss := r.sites[site]
	if ss == nil {
		return nil
	}
	// Passes: everyone (no list); members only; members, then the others.
	type pass func(*conn) bool
	everyone := func(*conn) bool { return true }
	member := func(c *conn) bool { return members.Has(node.NodeID(c.key)) }
	other := func(c *conn) bool { return !members.Has(node.NodeID(c.key)) }
	passes := []pass{everyone}
	if members != nil {
		passes = []pass{member}
		if members.Policy == node.MembersFirst {
			passes = append(passes, other)
		}
	}
	var picked [relay.MaxFind]*announcement
	k := 0
	for _, admit := range passes {
		for t := range ss.tiers {
			// Without a member list each step either picks or skips the
			// asker or an excluded peer, so the walk is bounded by
			// n + len(exclude) + 1 steps per tier.
			for a := ss.tiers[t].head; a != nil && k < n; a = a.next {
				if a.c == asker || !admit(a.c) {
					continue
				}
				if _, ok := exclude[a.c.key]; ok {
					continue
				}
				picked[k] = a
				k++
			}
		}
	}
	out := make([]relay.PeerInfo, k)
	for i, a := range picked[:k] {
		l := &ss.tiers[a.tier]
		l.remove(a)
		l.pushBack(a)
		out[i] = relay.PeerInfo{Peer: a.c.keyText, Role: a.c.role, Capacity: a.c.capacity, Roots: a.roots}
		asker.introduce(a.c.key)
	}
	return out
}

// introduce records that c found key. Called with r.mu held for writing.
func (c *conn) introduce(key node.SiteID) {
	if c.knows(key) {
		return
	}
	if len(c.intro) < maxIntroductions {
		c.intro = append(c.intro, key)
		return
	}
	c.intro[c.introNext] = key
	c.introNext = (c.introNext + 1) % maxIntroductions
}

// knows reports whether c found key. Called with r.mu held.
func (c *conn) knows(key node.SiteID) bool {
	for i := range c.intro {
		if c.intro[i] == key {
			return true
		}
	}
	return false
}

// signal queues msg (a forwarded signal) to the peer with key text to, if
// from and to found each other. Errors wrap relay.ErrUnknownPeer,
// relay.ErrNotIntroduced or (to not a key) relay.ErrBadMessage.
func (r *registry) signal(from *conn, to string, msg []byte) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	dst := r.byText[to]
	if dst == nil {
		// Not the canonical text of a connected key: parse it, for
		// the error (or an upper-case spelling).
		key, err := parseSite(to, "signal to")
		if err != nil {
			return err
		}
		if dst = r.peers[key]; dst == nil {
			return fmt.Errorf("signal to %s: %w", key, relay.ErrUnknownPeer)
		}
	}
	if !from.knows(dst.key) && !dst.knows(from.key) {
		return fmt.Errorf("signal to %s: %w", dst.keyText, relay.ErrNotIntroduced)
	}
	dst.send(msg)
	return nil
}

// counts returns the number of peers and announcements, for the gauges.
func (r *registry) counts() (peers, anns int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.peers), r.nAnn
}
