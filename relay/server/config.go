package relayserver

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearthcdn/hearth/relay"
)

// Defaults for the zero fields of Config. Each limit is also a flag and an
// environment variable of `hearth relay` (see cmd/hearth/relay.go).
const (
	DefaultMaxMessageSize   = 16 << 10 // bytes: an SDP offer with many candidates fits
	DefaultMaxSites         = 64
	DefaultMaxSubscriptions = 64
	DefaultMaxConnsPerIP    = 64
	DefaultMessageRate      = 50.0 // messages per second per peer
	DefaultMessageBurst     = 100
	DefaultIdleTimeout      = 60 * time.Second
	DefaultHelloTimeout     = 10 * time.Second
	DefaultSendQueue        = 256 << 10 // bytes
	DefaultCoalesce         = time.Millisecond
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxRecords       = 100_000
	DefaultMaxStrikes       = 20
	DefaultTURNTTL          = 30 * time.Minute
)

// Config configures a Server. Zero fields take the defaults above.
type Config struct {
	// Logger receives the server's structured logs; nil discards them.
	Logger *slog.Logger

	// MaxMessageSize bounds one WebSocket message from a peer, in bytes.
	// A larger message gets the connection closed (status 1009).
	MaxMessageSize int
	// MaxSites bounds the sites one announce may list (the "announces per
	// peer": an announce replaces the peer's previous one).
	MaxSites int
	// MaxSubscriptions bounds the root-record subscriptions of one peer.
	MaxSubscriptions int
	// MaxConnsPerIP bounds concurrent WebSocket connections from one IP
	// address, counting an IPv6 address's whole /64 as one (IPKey); more
	// get HTTP 429.
	MaxConnsPerIP int
	// MessageRate is each peer's sustained message rate (messages per
	// second) and MessageBurst its token-bucket depth. A message over the
	// rate is dropped with a rate_limited error.
	MessageRate  float64
	MessageBurst int
	// MaxStrikes is how many refused messages (over the rate, or
	// malformed) in a row get a peer disconnected.
	MaxStrikes int
	// IdleTimeout: a peer from which nothing (not even a pong) arrived for
	// this long is disconnected. The relay pings peers idle for a third of
	// it.
	IdleTimeout time.Duration
	// HelloTimeout: a connection that has not completed hello by then is
	// closed.
	HelloTimeout time.Duration
	// SendQueue bounds the bytes queued to one peer beyond what its
	// socket holds. A peer that reads so slowly that its queue fills is
	// disconnected; it never stalls the relay or other peers.
	SendQueue int
	// WriteTimeout bounds one write to a peer's socket; a peer whose
	// socket accepts nothing for this long is disconnected.
	WriteTimeout time.Duration
	// Coalesce is how long the relay may hold work back so that it is done
	// in batches. Under load an event loop that has just handled a round of
	// events waits this long before taking the next round, so it wakes once
	// per Coalesce instead of once per message (an idle loop still wakes at
	// once); output queued outside the loops waits at most this long. Each
	// hop of a message may thus take Coalesce longer. Negative turns it
	// off: every event is handled, and every message written, at once.
	Coalesce time.Duration
	// Loops is the number of epoll event loops (Linux): 0 means GOMAXPROCS,
	// negative runs every connection in blocking mode (a goroutine each),
	// as TLS connections and other systems always do.
	Loops int
	// MaxRecords bounds the sites whose latest root record the relay keeps.
	// When full, the least recently published record of a site nobody
	// subscribes to is forgotten.
	MaxRecords int

	// TrustProxy takes a client's address from the last entry of the
	// X-Forwarded-For header (the one the relay's own reverse proxy
	// appended) instead of the connection's, for the per-IP limit. Set it
	// only behind a proxy that always sets the header: otherwise clients
	// choose their own address.
	TrustProxy bool

	// OriginPatterns, if set, restricts the Origin header of browser
	// connections (path.Match patterns on the origin's host). By default
	// any origin may connect: the relay is a public service, peers
	// authenticate with their keys and no cookie grants anything, so
	// cross-site requests are harmless.
	OriginPatterns []string

	// STUNURLs are advertised in the welcome and ice messages, e.g.
	// "stun:relay.example.org:3478".
	STUNURLs []string
	// TURNURLs are advertised in ice messages with short-lived credentials
	// when TURNSecret is set, e.g. "turn:relay.example.org:3478?transport=udp".
	TURNURLs []string
	// TURNSecret is the secret shared with the TURN server (see TURN and
	// TURNCredentials); empty disables TURN credentials.
	TURNSecret []byte
	// TURNTTL is how long a TURN credential stays valid. Each connection
	// gets one credential, the same in every ice answer until less than
	// half of TURNTTL is left, then a fresh one; so an answer's credential
	// is valid for between TURNTTL/2 and TURNTTL. A TURN allocation must be
	// refreshed with a valid credential (RFC 8656 §7, §9), so a WebRTC
	// connection relayed through TURN lasts at most that long; a shorter
	// TTL bounds how long a credential that leaked, or outlived its
	// connection, can be used.
	TURNTTL time.Duration

	// Registry receives the server's metrics and is served on /metrics;
	// nil makes a new one with the Go and process collectors.
	Registry *prometheus.Registry

	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	setInt := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	setDur := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	setInt(&c.MaxMessageSize, DefaultMaxMessageSize)
	setInt(&c.MaxSites, DefaultMaxSites)
	setInt(&c.MaxSubscriptions, DefaultMaxSubscriptions)
	setInt(&c.MaxConnsPerIP, DefaultMaxConnsPerIP)
	setInt(&c.MessageBurst, DefaultMessageBurst)
	setInt(&c.MaxStrikes, DefaultMaxStrikes)
	setInt(&c.SendQueue, DefaultSendQueue)
	setInt(&c.MaxRecords, DefaultMaxRecords)
	if c.MessageRate == 0 {
		c.MessageRate = DefaultMessageRate
	}
	setDur(&c.IdleTimeout, DefaultIdleTimeout)
	setDur(&c.HelloTimeout, DefaultHelloTimeout)
	setDur(&c.WriteTimeout, DefaultWriteTimeout)
	setDur(&c.TURNTTL, DefaultTURNTTL)
	setDur(&c.Coalesce, DefaultCoalesce)
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.MaxMessageSize < 1024:
		return fmt.Errorf("max message size %d bytes: below 1024: %w", c.MaxMessageSize, relay.ErrBadConfig)
	case c.MaxSites < 0, c.MaxSubscriptions < 0, c.MaxConnsPerIP < 0, c.MessageBurst < 0,
		c.MaxStrikes < 0, c.SendQueue < 0, c.MaxRecords < 0:
		return fmt.Errorf("negative limit: %w", relay.ErrBadConfig)
	case c.MessageRate < 0:
		return fmt.Errorf("message rate %v: %w", c.MessageRate, relay.ErrBadConfig)
	case c.IdleTimeout < 100*time.Millisecond:
		return fmt.Errorf("idle timeout %v: below 100ms: %w", c.IdleTimeout, relay.ErrBadConfig)
	case c.HelloTimeout < 0, c.WriteTimeout < 0, c.TURNTTL < 0:
		return fmt.Errorf("negative timeout: %w", relay.ErrBadConfig)
	case len(c.TURNSecret) > 0 && len(c.TURNSecret) < 16:
		return fmt.Errorf("TURN secret of %d bytes: want at least 16: %w", len(c.TURNSecret), relay.ErrBadConfig)
	case len(c.TURNSecret) > 0 && len(c.TURNURLs) == 0:
		return fmt.Errorf("TURN secret without TURN URLs: %w", relay.ErrBadConfig)
	}
	return nil
}
