package exchange

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// peer is what a Fetcher knows about one peer. Guarded by Fetcher.mu.
type peer struct {
	id          string
	cc          *clientConn // nil until connected
	dialing     bool
	inflight    int       // requests in flight (ours)
	ranges      int       // of which byte-range requests
	rate        float64   // EWMA of byte-range transfer rates, bytes/s
	until       time.Time // not used before (backoff after busy, stalls, failed dials)
	fails       int       // consecutive failures, for backoff
	bannedUntil time.Time
}

// lease is a request slot on a connected peer.
type lease struct {
	p     *peer
	cc    *clientConn
	big   bool
	start time.Time
}

// errNoPeer: no peer can take the request now, and none is on its way.
var errNoPeer = errors.New("no peer available")

func (f *Fetcher) broadcastLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Fetcher) knowLocked(id string) *peer {
	if p := f.peers[id]; p != nil {
		return p
	}
	if len(f.peers) >= maxKnownPeers {
		// Forget an idle, unconnected peer to make room.
		for k, p := range f.peers {
			if p.cc == nil && !p.dialing && p.inflight == 0 {
				delete(f.peers, k)
				break
			}
		}
		if len(f.peers) >= maxKnownPeers {
			return nil
		}
	}
	p := &peer{id: id}
	f.peers[id] = p
	return p
}

func (p *peer) connected() bool { return p.cc != nil && !p.cc.isClosed() }

// free reports whether p can take one more request now.
func (f *Fetcher) freeLocked(p *peer, big bool) bool {
	// The connection's own count includes canceled requests whose END has
	// not come yet: the server still counts them against its limit.
	if max(p.inflight, p.cc.inflight()) >= min(p.cc.limit(), f.cfg.MaxRequestsPerConn) {
		return false
	}
	return !big || p.ranges < f.cfg.MaxRangesPerConn
}

// acquire returns a request slot on the best connected peer not in
// exclude, connecting to and finding more peers as needed. With wait
// false it returns errNoPeer at once if no slot is free; with wait true it
// waits, and returns errNoPeer only when no peer is connected, connecting
// or findable.
func (f *Fetcher) acquire(ctx context.Context, exclude map[string]bool, big, wait bool) (*lease, error) {
	startSeq := -1
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return nil, ErrClosed
		}
		now := f.cfg.Clock.Now()
		var best *peer
		var bestScore float64
		pending := 0 // peers that may yet free a slot or finish connecting
		conns := 0
		for _, p := range f.peers {
			if p.dialing || p.connected() {
				conns++
			}
			if exclude[p.id] || now.Before(p.bannedUntil) {
				continue
			}
			if p.dialing {
				pending++
				continue
			}
			if !p.connected() {
				continue
			}
			pending++
			if now.Before(p.until) || !f.freeLocked(p, big) {
				continue
			}
			load := p.inflight
			if big {
				load = p.ranges
			}
			// Prefer fast peers, then idle ones.
			score := (p.rate + 1<<20) / float64(load+1)
			if best == nil || score > bestScore {
				best, bestScore = p, score
			}
		}
		if best != nil {
			best.inflight++
			if big {
				best.ranges++
			}
			l := &lease{p: best, cc: best.cc, big: big, start: now}
			f.mu.Unlock()
			return l, nil
		}
		// Connect to another known peer if there is room.
		if conns < f.cfg.MaxConns && f.cfg.Dialer != nil {
			for _, p := range f.peers {
				if exclude[p.id] || now.Before(p.bannedUntil) || p.dialing || p.connected() || now.Before(p.until) {
					continue
				}
				f.dialLocked(p)
				pending++
				break
			}
		}
		if pending == 0 {
			if f.cfg.Finder == nil || f.cfg.Dialer == nil {
				f.mu.Unlock()
				return nil, errNoPeer
			}
			if startSeq < 0 {
				startSeq = f.findSeq
				if !f.finding {
					f.findLocked(exclude)
				}
			} else if f.findSeq > startSeq && !f.finding {
				f.mu.Unlock()
				return nil, errNoPeer // a find since we asked brought nobody usable
			}
		}
		if !wait {
			f.mu.Unlock()
			return nil, errNoPeer
		}
		ch := f.changed
		// Wake up when a backoff ends, too.
		var soonest time.Duration
		for _, p := range f.peers {
			if d := p.until.Sub(now); d > 0 && (soonest == 0 || d < soonest) && !exclude[p.id] {
				soonest = d
			}
		}
		f.mu.Unlock()
		var timer <-chan time.Time
		var tm Timer
		if soonest > 0 {
			tm = f.cfg.Clock.NewTimer(soonest)
			timer = tm.C()
		}
		select {
		case <-ch:
		case <-timer:
		case <-ctx.Done():
		}
		if tm != nil {
			tm.Stop() // each round sets its own
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
	}
}

// release gives a slot back and learns from how the request went.
func (f *Fetcher) release(l *lease, bytes int64, err error) {
	now := f.cfg.Clock.Now()
	var closeCC *clientConn
	f.mu.Lock()
	p := l.p
	p.inflight--
	if l.big {
		p.ranges--
	}
	switch {
	case err == nil:
		p.fails = 0
		if d := now.Sub(l.start).Seconds(); l.big && bytes >= 1<<20 && d > 0 {
			sample := float64(bytes) / d
			if p.rate == 0 {
				p.rate = sample
			} else {
				p.rate = 0.6*p.rate + 0.4*sample
			}
		}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	case isPeerFault(err):
		if now.After(p.bannedUntil) { // not banned already by a concurrent request
			p.bannedUntil = now.Add(f.cfg.BanTime)
			closeCC, p.cc = p.cc, nil
			f.log.Warn("exchange: banning peer", "peer", p.id, "err", err)
			if f.cfg.OnBan != nil {
				f.cfg.OnBan(p.id, err)
			}
		}
	case errors.Is(err, ErrBusy):
		p.fails++
		p.until = now.Add(min(10*time.Millisecond<<min(p.fails, 8), 2*time.Second))
	case errors.Is(err, ErrStalled):
		p.fails++
		p.rate /= 2
		p.until = now.Add(f.cfg.StallTimeout)
	case errors.Is(err, ErrClosed):
		if p.cc == l.cc {
			p.cc = nil
		}
	}
	f.broadcastLocked()
	if closeCC != nil {
		f.spawnLocked(func() { closeCC.close(fmt.Errorf("peer banned: %w", err)) })
	}
	f.mu.Unlock()
}

// dialLocked starts connecting to p.
func (f *Fetcher) dialLocked(p *peer) {
	p.dialing = true
	ok := f.spawnLocked(func() {
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.DialTimeout)
		defer cancel()
		c, err := f.cfg.Dialer.Dial(ctx, p.id)
		var cc *clientConn
		if err == nil {
			cc = newClientConn(p.id, c, f.log, f.cfg.Clock)
			if err = cc.sendSettings(ctx); err != nil {
				cc.close(err)
			}
		}
		f.mu.Lock()
		p.dialing = false
		switch {
		case err != nil:
			p.fails++
			p.until = f.cfg.Clock.Now().Add(min(time.Second<<min(p.fails, 6), time.Minute))
			f.log.Debug("exchange: dial failed", "peer", p.id, "err", err)
		case f.closed:
			f.mu.Unlock()
			cc.close(ErrClosed)
			return
		default:
			p.cc = cc
			p.fails = 0
			f.spawnLocked(func() {
				<-cc.done
				f.mu.Lock()
				if p.cc == cc {
					p.cc = nil
				}
				f.broadcastLocked()
				f.mu.Unlock()
			})
		}
		f.broadcastLocked()
		f.mu.Unlock()
	})
	if !ok {
		p.dialing = false
	}
}

// findLocked asks the Finder for more peers, excluding those known.
func (f *Fetcher) findLocked(exclude map[string]bool) {
	f.finding = true
	known := make([]string, 0, len(f.peers)+len(exclude))
	for id := range f.peers {
		known = append(known, id)
	}
	for id := range exclude {
		if f.peers[id] == nil {
			known = append(known, id)
		}
	}
	ok := f.spawnLocked(func() {
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.DialTimeout)
		defer cancel()
		ids, err := f.cfg.Finder.Find(ctx, f.cfg.Site, 2*f.cfg.MaxConns, known)
		if err != nil {
			f.log.Debug("exchange: find failed", "site", f.cfg.Site, "err", err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, id := range ids {
			f.knowLocked(id)
		}
		f.finding = false
		f.findSeq++
		f.lastFind = f.cfg.Clock.Now()
		f.broadcastLocked()
	})
	if !ok {
		f.finding = false
	}
}
