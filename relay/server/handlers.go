package relayserver

import (
	"errors"
	"fmt"
	"slices"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
)

// maxCapacity caps the capacity hint so that it stays a small number.
const maxCapacity = 1 << 20

// handle processes one text message from the peer. It never blocks: every
// answer is queued with send.
func (c *conn) handle(b []byte) {
	if !c.allow() {
		c.strikes++
		if c.strikes == 1 { // tell once per run of refusals, not once per message
			c.sendError(0, "", fmt.Errorf("over %v messages/s: %w", c.s.cfg.MessageRate, relay.ErrRateLimited))
		}
		if c.strikes > c.s.cfg.MaxStrikes {
			c.closeWith(0, "", fmt.Errorf("rate limit: %w", relay.ErrRateLimited), reasonStrikes, closePolicy)
		}
		return
	}
	var m relay.Message
	if err := relay.Decode(b, &m); err != nil {
		if !c.authed.Load() {
			c.closeWith(0, "", err, reasonBadHello, closePolicy)
			return
		}
		c.refuse(0, "", err, true)
		return
	}
	c.s.metrics.receivedType(m.Type)
	if !c.authed.Load() {
		if m.Type != relay.TypeHello {
			c.closeWith(m.ID, "", fmt.Errorf("%s before hello: %w", m.Type, relay.ErrHelloRequired), reasonBadHello, closePolicy)
			return
		}
		c.hello(&m)
		return
	}
	var err error
	switch m.Type {
	case relay.TypeSignal:
		err = c.signal(&m)
	case relay.TypeAnnounce:
		err = c.announce(&m)
	case relay.TypeFind:
		err = c.find(&m)
	case relay.TypePublish:
		err = c.publish(&m)
	case relay.TypeSubscribe:
		err = c.subscribe(&m)
	case relay.TypeUnsubscribe:
		err = c.unsubscribe(&m)
	case relay.TypeICE:
		err = c.ice(&m)
	case relay.TypePing:
		c.send(okLike(relay.TypePong, m.ID))
	case relay.TypeHello:
		err = fmt.Errorf("second hello: %w", relay.ErrBadMessage)
	default:
		err = fmt.Errorf("type %q: %w", m.Type, relay.ErrUnknownType)
	}
	if err != nil {
		peer := ""
		if m.Type == relay.TypeSignal {
			peer = m.To
		}
		c.refuse(m.ID, peer, err, !innocent(err))
		return
	}
	c.strikes = 0
}

// innocent reports whether a refusal is outside the peer's control, so that
// it does not count as a strike: the other peer left or was never found
// (e.g. after a relay restart), another publisher was faster, the relay is
// full, or the type comes from a newer client. The rate limit still bounds
// how often a peer can provoke them.
func innocent(err error) bool {
	for _, e := range []error{relay.ErrUnknownPeer, relay.ErrNotIntroduced, relay.ErrStaleRecord,
		relay.ErrRelayFull, relay.ErrTooManySubscriptions, relay.ErrUnknownType} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// refuse answers a request with an error. A strike counts towards
// MaxStrikes; a request refused for reasons outside the peer's control (a
// peer that left, a stale record) does not strike.
func (c *conn) refuse(id uint64, peer string, err error, strike bool) {
	if strike {
		c.strikes++
		if c.strikes > c.s.cfg.MaxStrikes {
			c.closeWith(id, peer, err, reasonStrikes, closePolicy)
			return
		}
	}
	c.sendError(id, peer, err)
}

// okLike encodes {"v":1,"type":T,"id":ID} without reflection.
func okLike(t relay.Type, id uint64) []byte {
	b := make([]byte, 0, 40)
	b = append(b, `{"v":1,"type":"`...)
	b = append(b, t...)
	b = append(b, '"')
	if id != 0 {
		b = append(b, `,"id":`...)
		b = fmt.Appendf(b, "%d", id)
	}
	return append(b, '}')
}

func (c *conn) hello(m *relay.Message) {
	key, err := relay.VerifyHello(m, c.nonce[:])
	if err != nil {
		c.closeWith(m.ID, "", err, reasonBadHello, closePolicy)
		return
	}
	c.key, c.keyText = key, key.String()
	if old := c.s.reg.register(c); old != nil {
		old.closeWith(0, "", fmt.Errorf("%s connected again: %w", c.keyText, relay.ErrReplaced), reasonReplaced, closePolicy)
	}
	c.authed.Store(true)
	c.sendMsg(&relay.Message{Type: relay.TypeWelcome, ID: m.ID, Peer: c.keyText, Limits: c.s.limits, Servers: c.s.stun})
	c.s.log.Debug("peer connected", "peer", c.keyText, "ip", c.ip)
}

func parseSite(s string, what string) (node.SiteID, error) {
	id, err := node.ParseSiteID(s)
	if err != nil {
		return id, fmt.Errorf("%s: %v: %w", what, err, relay.ErrBadMessage)
	}
	return id, nil
}

func (c *conn) announce(m *relay.Message) error {
	if !m.Role.Valid() {
		return fmt.Errorf("announce: role %q: %w", m.Role, relay.ErrBadMessage)
	}
	if m.Capacity < 0 || m.Capacity > maxCapacity {
		return fmt.Errorf("announce: capacity %d: %w", m.Capacity, relay.ErrBadMessage)
	}
	if len(m.Sites) > c.s.cfg.MaxSites {
		return fmt.Errorf("announce: %d sites, limit %d: %w", len(m.Sites), c.s.cfg.MaxSites, relay.ErrTooManySites)
	}
	sites := make([]node.SiteID, 0, len(m.Sites))
	roots := make([][]string, 0, len(m.Sites))
	for _, sr := range m.Sites {
		site, err := parseSite(sr.Site, "announce site")
		if err != nil {
			return err
		}
		if slices.Contains(sites, site) {
			return fmt.Errorf("announce: site %s twice: %w", site, relay.ErrBadMessage)
		}
		if len(sr.Roots) > relay.MaxRootsPerSite {
			return fmt.Errorf("announce: %d roots for %s, limit %d: %w",
				len(sr.Roots), site, relay.MaxRootsPerSite, relay.ErrTooManySites)
		}
		rs := make([]string, 0, len(sr.Roots))
		for _, r := range sr.Roots {
			if len(r) > relay.MaxCIDText {
				return fmt.Errorf("announce: root of %d bytes: %w", len(r), relay.ErrTooLarge)
			}
			id, err := cid.Decode(r)
			if err != nil {
				return fmt.Errorf("announce: root %q: %v: %w", r, err, relay.ErrBadMessage)
			}
			rs = append(rs, id.String())
		}
		sites = append(sites, site)
		roots = append(roots, rs)
	}
	c.s.reg.announce(c, m.Role, m.Capacity, sites, roots)
	c.send(okLike(relay.TypeOK, m.ID))
	return nil
}

func (c *conn) find(m *relay.Message) error {
	site, err := parseSite(m.Site, "find site")
	if err != nil {
		return err
	}
	if m.N < 1 {
		return fmt.Errorf("find: n=%d: %w", m.N, relay.ErrBadMessage)
	}
	n := min(m.N, relay.MaxFind)
	if len(m.Exclude) > relay.MaxExclude {
		return fmt.Errorf("find: %d excluded, limit %d: %w", len(m.Exclude), relay.MaxExclude, relay.ErrTooLarge)
	}
	var exclude map[node.SiteID]struct{}
	if len(m.Exclude) > 0 {
		exclude = make(map[node.SiteID]struct{}, len(m.Exclude))
		for _, e := range m.Exclude {
			id, err := parseSite(e, "find exclude")
			if err != nil {
				return err
			}
			exclude[id] = struct{}{}
		}
	}
	peers := c.s.reg.find(c, site, n, exclude, c.s.records.memberList(site))
	c.sendMsg(&relay.Message{Type: relay.TypePeers, ID: m.ID, Site: m.Site, Peers: peers})
	return nil
}

// signal forwards m's payload to m.To.
func (c *conn) signal(m *relay.Message) error {
	if len(m.Payload) == 0 {
		return fmt.Errorf("signal without payload: %w", relay.ErrBadMessage)
	}
	out := relay.AppendSignal(make([]byte, 0, len(m.Payload)+len(c.keyText)+48), c.keyText, m.Payload)
	if err := c.s.reg.signal(c, m.To, out); err != nil {
		return err
	}
	c.s.metrics.relayed.Inc()
	return nil
}

func (c *conn) publish(m *relay.Message) error {
	if len(m.Members) > 0 {
		if len(m.Record) > 0 {
			return fmt.Errorf("publish: a record and a member list: %w", relay.ErrBadMessage)
		}
		return c.publishMembers(m)
	}
	if len(m.Record) == 0 || len(m.Record) > node.MaxRecordSize {
		return fmt.Errorf("publish: record of %d bytes: %w", len(m.Record), relay.ErrBadRecord)
	}
	rec, err := c.s.records.publish(m.Record)
	if err != nil {
		return err
	}
	c.s.metrics.published.Inc()
	c.s.log.Info("root record published", "site", rec.Site, "seq", rec.Seq, "root", rec.Root, "by", c.keyText)
	c.send(okLike(relay.TypeOK, m.ID))
	return nil
}

// publishMembers stores a site's member list; find follows it at once.
func (c *conn) publishMembers(m *relay.Message) error {
	if len(m.Members) > node.MaxMembersSize {
		return fmt.Errorf("publish: member list of %d bytes: %w", len(m.Members), relay.ErrBadRecord)
	}
	l, err := c.s.records.publishMembers(m.Members)
	if err != nil {
		return err
	}
	c.s.log.Info("member list published", "site", l.Site, "seq", l.Seq, "members", len(l.Members), "policy", l.Policy, "by", c.keyText)
	c.send(okLike(relay.TypeOK, m.ID))
	return nil
}

func (c *conn) subscribe(m *relay.Message) error {
	site, err := parseSite(m.Site, "subscribe site")
	if err != nil {
		return err
	}
	return c.s.records.subscribe(c, site, c.s.cfg.MaxSubscriptions, okLike(relay.TypeOK, m.ID))
}

func (c *conn) unsubscribe(m *relay.Message) error {
	site, err := parseSite(m.Site, "unsubscribe site")
	if err != nil {
		return err
	}
	c.s.records.unsubscribe(c, site)
	c.send(okLike(relay.TypeOK, m.ID))
	return nil
}

// ice answers with the STUN servers and, with TURN, the connection's TURN
// credential: one per connection, handed again in every answer until less
// than half of Config.TURNTTL is left, then replaced by a fresh one.
func (c *conn) ice(m *relay.Message) error {
	out := &relay.Message{Type: relay.TypeICE, ID: m.ID}
	out.Servers = append(out.Servers, c.s.stun...)
	if len(c.s.cfg.TURNSecret) > 0 {
		ttl := c.s.cfg.TURNTTL
		if now := c.s.cfg.Now(); c.turnUser == "" || c.turnExpires.Sub(now) < ttl/2 {
			c.turnExpires = now.Add(ttl)
			c.turnUser, c.turnPass = TURNCredentials(c.s.cfg.TURNSecret, c.keyText, c.turnExpires)
		}
		out.Servers = append(out.Servers, relay.ICEServer{URLs: c.s.cfg.TURNURLs, Username: c.turnUser, Credential: c.turnPass})
		out.Expires = c.turnExpires.Unix()
	}
	c.sendMsg(out)
	return nil
}
