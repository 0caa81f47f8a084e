package relayclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
)

// Announcement is what a peer serves: its role, a capacity hint and the
// sites with the roots of each it holds.
type Announcement struct {
	// Role is relay.RoleSeeder or relay.RoleTab.
	Role relay.Role
	// Capacity is how many more peers the announcer can take; 0 keeps it
	// announced but out of find answers.
	Capacity int
	// Sites lists the sites served, at most the relay's max_sites (see the
	// welcome limits; 64 by default). An empty list withdraws everything.
	Sites []SiteRoots
}

// SiteRoots is one announced site and the roots of it the peer holds (at
// most relay.MaxRootsPerSite).
type SiteRoots struct {
	Site  node.SiteID
	Roots []cid.Cid
}

// Peer is one peer of a Find answer.
type Peer struct {
	ID       node.SiteID
	Role     relay.Role
	Capacity int
	// Roots are the roots of the asked site the peer announced.
	Roots []cid.Cid
}

// Signal is a message from another peer, relayed: an offer, answer or ICE
// candidate as the sender encoded it. When Err is set, it is instead the
// relay refusing a signal this client sent to Peer (Err wraps
// relay.ErrUnknownPeer, relay.ErrNotIntroduced or relay.ErrRateLimited) and
// Payload is empty.
type Signal struct {
	// Peer is the sender, or the addressee of a refused signal.
	Peer    node.SiteID
	Payload json.RawMessage
	Err     error
}

// ICEServers is the relay's answer to an ICE servers request: STUN servers
// and, when the relay runs TURN, TURN servers with credentials.
type ICEServers struct {
	// Servers has the shape of RTCIceServer / webrtc.ICEServer.
	Servers []relay.ICEServer
	// Expires is when the TURN credentials stop working; zero when there
	// are none.
	Expires time.Time
}

func (a *Announcement) message() (*relay.Message, error) {
	if !a.Role.Valid() {
		return nil, fmt.Errorf("announce role %q: %w", a.Role, relay.ErrBadMessage)
	}
	if a.Capacity < 0 {
		return nil, fmt.Errorf("announce capacity %d: %w", a.Capacity, relay.ErrBadMessage)
	}
	m := &relay.Message{Type: relay.TypeAnnounce, Role: a.Role, Capacity: a.Capacity}
	for _, s := range a.Sites {
		if len(s.Roots) > relay.MaxRootsPerSite {
			return nil, fmt.Errorf("announce: %d roots for %s: %w", len(s.Roots), s.Site, relay.ErrTooManySites)
		}
		sr := relay.SiteRoots{Site: s.Site.String()}
		for _, r := range s.Roots {
			sr.Roots = append(sr.Roots, r.String())
		}
		m.Sites = append(m.Sites, sr)
	}
	return m, nil
}

// Announce sets what this client serves and waits, up to ctx, until the
// relay has it. The announcement replaces the previous one, holds until the
// next Announce or Close, and is sent again after every reconnection; the
// relay withdraws it when the connection drops. If the relay refuses it
// (errors wrap relay.ErrTooManySites or relay.ErrBadMessage) it is dropped;
// if ctx ends or the connection drops first (ctx's error,
// relay.ErrDisconnected) it stays and goes out on the next connection.
func (c *Client) Announce(ctx context.Context, a Announcement) error {
	m, err := a.message()
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.announce = m
	c.mu.Unlock()
	cp := *m
	if _, err := c.request(ctx, &cp); err != nil {
		if isRefusal(err) {
			c.mu.Lock()
			if c.announce == m {
				c.announce = nil
			}
			c.mu.Unlock()
		}
		return err
	}
	return nil
}

// request waits for a ready session and makes a request on it.
func (c *Client) request(ctx context.Context, m *relay.Message) (*relay.Message, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	return s.request(ctx, m)
}

// Find asks for up to n (1..relay.MaxFind) peers serving site, not counting
// this client and the peers in exclude (at most relay.MaxExclude). The relay
// returns seeders before tabs and spreads load between them (see
// relay/README.md). It returns an empty slice when nobody serves site.
// Finding a peer is what allows signalling with it. Errors: ctx's error,
// relay.ErrClosed, relay.ErrDisconnected, or a refusal wrapping
// relay.ErrBadMessage or relay.ErrRateLimited.
func (c *Client) Find(ctx context.Context, site node.SiteID, n int, exclude []node.SiteID) ([]Peer, error) {
	if n < 1 || n > relay.MaxFind || len(exclude) > relay.MaxExclude {
		return nil, fmt.Errorf("find %d peers excluding %d: %w", n, len(exclude), relay.ErrBadMessage)
	}
	m := &relay.Message{Type: relay.TypeFind, Site: site.String(), N: n}
	for _, e := range exclude {
		m.Exclude = append(m.Exclude, e.String())
	}
	r, err := c.request(ctx, m)
	if err != nil {
		return nil, err
	}
	if r.Type != relay.TypePeers {
		return nil, fmt.Errorf("find answered with %q: %w", r.Type, relay.ErrBadMessage)
	}
	peers := make([]Peer, 0, len(r.Peers))
	for _, p := range r.Peers {
		id, err := node.ParseSiteID(p.Peer)
		if err != nil {
			c.log.Warn("relay sent a bad peer", "peer", p.Peer)
			continue
		}
		out := Peer{ID: id, Role: p.Role, Capacity: p.Capacity}
		for _, s := range p.Roots {
			if root, err := cid.Decode(s); err == nil {
				out.Roots = append(out.Roots, root)
			}
		}
		peers = append(peers, out)
	}
	return peers, nil
}

// Signal sends payload (one JSON value: an offer, answer or ICE candidate;
// opaque to the relay) to peer to, which this client or which the other
// peer must have found with Find. It returns once the message is queued for
// the relay, not when it is delivered; if the relay refuses it, the refusal
// arrives on Signals. Errors: relay.ErrBadMessage (payload not JSON),
// relay.ErrTooLarge (over the relay's message size), ctx's error,
// relay.ErrClosed, relay.ErrDisconnected.
func (c *Client) Signal(ctx context.Context, to node.SiteID, payload json.RawMessage) error {
	if !json.Valid(payload) {
		return fmt.Errorf("signal payload is not JSON: %w", relay.ErrBadMessage)
	}
	b, err := relay.Encode(&relay.Message{Type: relay.TypeSignal, To: to.String(), Payload: payload})
	if err != nil {
		return err
	}
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	if s.limits.MaxMessage > 0 && len(b) > s.limits.MaxMessage {
		return fmt.Errorf("signal of %d bytes, relay limit %d: %w", len(b), s.limits.MaxMessage, relay.ErrTooLarge)
	}
	return s.enqueue(ctx, b)
}

// Signals returns the channel of incoming signals (and refusals of outgoing
// ones, see Signal). Its capacity is Config.SignalBuffer; signals arriving
// while it is full are dropped, so read it promptly. Close closes it.
func (c *Client) Signals() <-chan Signal { return c.signals }

func (c *Client) deliverSignal(s Signal) {
	select {
	case c.signals <- s:
	default:
		c.log.Warn("signal dropped: Signals channel full", "peer", s.Peer)
	}
}

// PublishRecord hands rec to the relay, which checks its signature and that
// its sequence is above the latest it holds, stores it and forwards it to
// the site's subscribers. Errors: a refusal wrapping relay.ErrBadRecord,
// relay.ErrStaleRecord or relay.ErrRelayFull; ctx's error; relay.ErrClosed;
// relay.ErrDisconnected.
func (c *Client) PublishRecord(ctx context.Context, rec *node.RootRecord) error {
	_, err := c.request(ctx, &relay.Message{Type: relay.TypePublish, Record: rec.Bytes()})
	return err
}

// PublishMembers hands a site's member list to the relay, which checks it
// like a record, follows it in find from then on and forwards it to the
// site's subscribers. Errors: as PublishRecord's.
func (c *Client) PublishMembers(ctx context.Context, l *node.MemberList) error {
	_, err := c.request(ctx, &relay.Message{Type: relay.TypePublish, Members: l.Bytes()})
	return err
}

// ICEServers asks the relay for its STUN servers and, when it runs TURN,
// TURN servers with the connection's short-lived credentials (the TURN
// credentials request): the same ones each time until half of their
// lifetime is left. Errors: ctx's error, relay.ErrClosed, relay.ErrDisconnected.
func (c *Client) ICEServers(ctx context.Context) (ICEServers, error) {
	r, err := c.request(ctx, &relay.Message{Type: relay.TypeICE})
	if err != nil {
		return ICEServers{}, err
	}
	if r.Type != relay.TypeICE {
		return ICEServers{}, fmt.Errorf("ice answered with %q: %w", r.Type, relay.ErrBadMessage)
	}
	out := ICEServers{Servers: r.Servers}
	if r.Expires > 0 {
		out.Expires = time.Unix(r.Expires, 0)
	}
	return out, nil
}

// iceKeep is how long CachedICEServers keeps an answer without TURN
// credentials (STUN only).
const iceKeep = 10 * time.Minute

// CachedICEServers is ICEServers, but keeps an answer and returns it again
// until half of its credentials' remaining lifetime has passed (iceKeep
// without TURN), so asking before every peer connection costs no round
// trip to the relay. Errors: those of ICEServers.
func (c *Client) CachedICEServers(ctx context.Context) (ICEServers, error) {
	c.iceMu.Lock()
	defer c.iceMu.Unlock()
	now := time.Now()
	if now.Before(c.iceUntil) {
		return c.ice, nil
	}
	out, err := c.ICEServers(ctx)
	if err != nil {
		return ICEServers{}, err
	}
	c.ice, c.iceUntil = out, now.Add(iceKeep)
	if !out.Expires.IsZero() {
		c.iceUntil = now.Add(out.Expires.Sub(now) / 2)
	}
	return out, nil
}

// IsRefusal reports whether err is the relay refusing a request (as opposed
// to the connection failing or ctx ending); errors.Is tells which refusal.
func IsRefusal(err error) bool { return isRefusal(err) && !errors.Is(err, relay.ErrDisconnected) }
