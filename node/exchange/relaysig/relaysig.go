// Package relaysig connects the exchange to the relay: it carries the
// exchange's signalling messages (offers, answers, trickled ICE candidates)
// as the payload of the relay's "signal" messages, and finds peers with the
// relay's "find". It is a separate package so that the exchange itself does
// not depend on the relay client.
//
// Wiring (seeder and fetcher alike):
//
//	rc, _ := relayclient.New(relayclient.Config{URL: relayURL, Key: nodeKey})
//	sig := relaysig.New(rc, log)
//	tr, _ := exchange.NewTransport(exchange.TransportConfig{Signaler: sig, Handler: srv, /* seeder; nil for a fetcher */
//		ICESource: relaysig.ICESource(rc)}) // STUN and TURN from the relay's ice answer
//	go sig.Run(ctx, tr) // relay signals → tr.HandleSignal
//	f, _ := exchange.NewFetcher(exchange.FetcherConfig{Site: site.String(), Dialer: tr, Finder: sig, Store: st})
package relaysig

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/exchange"
	"github.com/hearthcdn/hearth/relay"
	relayclient "github.com/hearthcdn/hearth/relay/client"
)

// Relay is an exchange.Signaler and exchange.Finder over a relay client.
// Peer IDs are node.SiteID text, as the relay names peers.
type Relay struct {
	c   *relayclient.Client
	log *slog.Logger
}

var (
	_ exchange.Signaler = (*Relay)(nil)
	_ exchange.Finder   = (*Relay)(nil)
)

// New returns an adapter over c. A nil logger discards logs.
func New(c *relayclient.Client, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{c: c, log: log}
}

// Send implements exchange.Signaler: m goes to peer to as a signal payload.
func (r *Relay) Send(ctx context.Context, to string, m exchange.SignalMsg) error {
	id, err := node.ParseSiteID(to)
	if err != nil {
		return fmt.Errorf("signalling %q: %w", to, err)
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding signal: %w", err)
	}
	if err := r.c.Signal(ctx, id, payload); err != nil {
		return fmt.Errorf("signalling %s: %w", to, err)
	}
	return nil
}

// Find implements exchange.Finder with the relay's find.
func (r *Relay) Find(ctx context.Context, site string, n int, exclude []string) ([]string, error) {
	sid, err := node.ParseSiteID(site)
	if err != nil {
		return nil, fmt.Errorf("finding peers of %q: %w", site, err)
	}
	n = min(max(n, 1), relay.MaxFind)
	var ex []node.SiteID
	for _, e := range exclude {
		if id, err := node.ParseSiteID(e); err == nil && len(ex) < relay.MaxExclude {
			ex = append(ex, id)
		}
	}
	peers, err := r.c.Find(ctx, sid, n, ex)
	if err != nil {
		return nil, fmt.Errorf("finding peers of %s: %w", site, err)
	}
	out := make([]string, 0, len(peers))
	for _, p := range peers {
		out = append(out, p.ID.String())
	}
	return out, nil
}

// Run hands every signal the relay delivers to t until ctx is done or the
// relay client closes. Payloads that are not exchange signals are dropped;
// so are the relay's refusals of signals we sent (the peer left): the
// connection attempt then fails at its own deadline.
func (r *Relay) Run(ctx context.Context, t *exchange.Transport) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case s, ok := <-r.c.Signals():
			if !ok {
				return nil
			}
			if s.Err != nil {
				r.log.Debug("relaysig: signal refused", "peer", s.Peer.String(), "err", s.Err)
				continue
			}
			var m exchange.SignalMsg
			if err := json.Unmarshal(s.Payload, &m); err != nil {
				r.log.Debug("relaysig: not an exchange signal", "peer", s.Peer.String(), "err", err)
				continue
			}
			t.HandleSignal(s.Peer.String(), m)
		}
	}
}
