package relayclient

import (
	"context"
	"slices"
	"sync"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
)

// siteSubs is the local side of one site's subscription: the latest record
// seen (verified) and the Subscriptions to hand records to.
type siteSubs struct {
	latest  *node.RootRecord
	members *node.MemberList
	subs    []*Subscription
}

// Subscription receives a site's root records and member lists. Records() holds at most one
// record, the newest: a reader that falls behind skips intermediate records
// but always gets the latest. Every record was verified by the client: its
// signature under the site key and a sequence strictly above any record
// delivered before.
type Subscription struct {
	c    *Client
	site node.SiteID
	ch   chan *node.RootRecord
	mch  chan *node.MemberList

	mu     sync.Mutex
	closed bool
}

// Subscribe subscribes to site's root records and waits, up to ctx, until
// the relay confirms. The relay sends the latest record it holds at once and
// every newer one as it arrives; the subscription is restored after every
// reconnection. Errors (nothing stays subscribed then): a refusal wrapping
// relay.ErrTooManySubscriptions, ctx's error, relay.ErrClosed,
// relay.ErrDisconnected.
func (c *Client) Subscribe(ctx context.Context, site node.SiteID) (*Subscription, error) {
	sub := &Subscription{c: c, site: site, ch: make(chan *node.RootRecord, 1), mch: make(chan *node.MemberList, 1)}
	c.mu.Lock()
	if c.ctx.Err() != nil {
		c.mu.Unlock()
		return nil, relay.ErrClosed
	}
	ss := c.subs[site]
	if ss == nil {
		ss = &siteSubs{}
		c.subs[site] = ss
	}
	ss.subs = append(ss.subs, sub)
	if ss.latest != nil {
		sub.offer(ss.latest)
	}
	if ss.members != nil {
		offerLatest(sub, sub.mch, ss.members)
	}
	c.mu.Unlock()
	if _, err := c.request(ctx, &relay.Message{Type: relay.TypeSubscribe, Site: site.String()}); err != nil {
		c.unsubscribe(sub, false)
		return nil, err
	}
	return sub, nil
}

// Site returns the subscribed site.
func (s *Subscription) Site() node.SiteID { return s.site }

// Records returns the channel of records; it is closed by Close (of the
// Subscription or the Client).
func (s *Subscription) Records() <-chan *node.RootRecord { return s.ch }

// MemberLists returns the channel of the site's member lists, each verified
// (signature, site, a sequence above any delivered before); like Records it
// holds only the newest. It is closed with Records.
func (s *Subscription) MemberLists() <-chan *node.MemberList { return s.mch }

// Close ends the subscription and closes Records. When it was the last one
// for its site, the client tells the relay (without waiting). It returns nil.
func (s *Subscription) Close() error {
	s.c.unsubscribe(s, true)
	return nil
}

// offer puts rec in the channel, replacing an unread older record.
func (s *Subscription) offer(rec *node.RootRecord) { offerLatest(s, s.ch, rec) }

// offerLatest puts v in ch (of one slot), replacing an unread older value.
func offerLatest[T any](s *Subscription, ch chan T, v T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	select {
	case ch <- v:
		return
	default:
	}
	select {
	case <-ch:
	default:
	}
	select {
	case ch <- v:
	default:
	}
}

func (s *Subscription) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
		if s.mch != nil {
			close(s.mch)
		}
	}
}

func (c *Client) unsubscribe(sub *Subscription, tell bool) {
	c.mu.Lock()
	last := false
	if ss := c.subs[sub.site]; ss != nil {
		if i := slices.Index(ss.subs, sub); i >= 0 {
			ss.subs = slices.Delete(ss.subs, i, i+1)
			if len(ss.subs) == 0 {
				delete(c.subs, sub.site)
				last = true
			}
		}
	}
	s := c.sess
	c.mu.Unlock()
	sub.close()
	if last && tell && s != nil {
		b, err := relay.Encode(&relay.Message{Type: relay.TypeUnsubscribe, Site: sub.site.String()})
		if err == nil {
			select {
			case s.out <- b:
			default: // the writer is backed up; the subscription ends with the connection
			}
		}
	}
}

// deliverRecord verifies a record from the relay and hands it to the site's
// subscriptions if it is newer than the latest seen.
func (c *Client) deliverRecord(siteText string, raw []byte) {
	site, err := node.ParseSiteID(siteText)
	if err != nil {
		c.log.Warn("relay sent a record for a bad site", "site", siteText)
		return
	}
	rec, err := node.ParseRootRecordFor(site, raw)
	if err != nil {
		c.log.Warn("relay sent a bad root record", "site", site, "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ss := c.subs[site]
	if ss == nil {
		return
	}
	if err := node.CheckNewer(ss.latest, rec); err != nil {
		return // a record we already have, e.g. resent after reconnecting
	}
	ss.latest = rec
	for _, sub := range ss.subs {
		sub.offer(rec)
	}
}

// deliverMembers verifies a member list from the relay and hands it to the
// site's subscriptions if it is newer than the latest seen.
func (c *Client) deliverMembers(siteText string, raw []byte) {
	site, err := node.ParseSiteID(siteText)
	if err != nil {
		c.log.Warn("relay sent a member list for a bad site", "site", siteText)
		return
	}
	l, err := node.ParseMemberListFor(site, raw)
	if err != nil {
		c.log.Warn("relay sent a bad member list", "site", site, "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ss := c.subs[site]
	if ss == nil {
		return
	}
	if err := node.CheckNewerMembers(ss.members, l); err != nil {
		return
	}
	ss.members = l
	for _, sub := range ss.subs {
		offerLatest(sub, sub.mch, l)
	}
}
