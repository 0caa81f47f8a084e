package gateway

import (
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Default bounds on the open record event streams of a Records handler.
// An open stream holds a connection, a file descriptor and a goroutine
// (about 25 KiB) for as long as its client wants, so a client that opens
// thousands costs the node as many; a browser or seeder needs one per site.
const (
	// DefaultStreamsPerIP bounds the streams of one client address.
	DefaultStreamsPerIP = 8
	// DefaultStreams bounds the streams of a handler in all.
	DefaultStreams = 2048
)

// StreamRetryAfter is the Retry-After of a 503 refusing an event stream
// over a bound.
const StreamRetryAfter = 30 * time.Second

// StreamLimits bound the record event streams a Records handler keeps
// open. A stream past a bound is refused with 503 Service Unavailable and
// Retry-After (StreamRetryAfter), an error wrapping ErrBusy.
type StreamLimits struct {
	// PerIP bounds the streams from one client: one IPv4 address, or one
	// IPv6 /64 prefix (a host is usually handed a whole /64). The client
	// is the connection's peer address: behind a reverse proxy every
	// client is the proxy. 0 means DefaultStreamsPerIP; negative, no bound.
	PerIP int
	// Total bounds the streams in all. 0 means DefaultStreams; negative,
	// no bound.
	Total int
}

// streamLimiter counts open streams by client prefix and in all.
type streamLimiter struct {
	perIP, total int // negative: no bound

	mu       sync.Mutex
	n        int
	byIP     map[netip.Prefix]int
	onChange func(open, clients int) // nil: none; called under mu
}

func newStreamLimiter(l StreamLimits) *streamLimiter {
	if l.PerIP == 0 {
		l.PerIP = DefaultStreamsPerIP
	}
	if l.Total == 0 {
		l.Total = DefaultStreams
	}
	return &streamLimiter{perIP: l.PerIP, total: l.Total, byIP: make(map[netip.Prefix]int)}
}

// acquire counts a stream from remoteAddr (an http.Request.RemoteAddr)
// and returns the function that uncounts it, or an error wrapping ErrBusy
// if a bound is reached.
func (l *streamLimiter) acquire(remoteAddr string) (release func(), err error) {
	p := clientPrefix(remoteAddr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= 0 && l.n >= l.total {
		return nil, fmt.Errorf("%d event streams open: %w", l.n, ErrBusy)
	}
	if l.perIP >= 0 && l.byIP[p] >= l.perIP {
		return nil, fmt.Errorf("%d event streams open from %s: %w", l.byIP[p], p, ErrBusy)
	}
	l.n++
	l.byIP[p]++
	l.changed()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.n--
			if l.byIP[p]--; l.byIP[p] <= 0 {
				delete(l.byIP, p)
			}
			l.changed()
		})
	}, nil
}

// changed reports the counts to onChange; l.mu is held.
func (l *streamLimiter) changed() {
	if l.onChange != nil {
		l.onChange(l.n, len(l.byIP))
	}
}

// clientPrefix returns what a client at remoteAddr ("ip:port") is counted
// by: its IPv4 address (an IPv4-mapped IPv6 address counts as IPv4), or the
// /64 prefix of its IPv6 address. Addresses that do not parse (a Unix
// socket) all count as one client, the zero Prefix.
func clientPrefix(remoteAddr string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Prefix{}
	}
	a := ap.Addr().Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// retryAfter is the Retry-After header value of d, in whole seconds.
func retryAfter(d time.Duration) string { return strconv.Itoa(int(d.Round(time.Second) / time.Second)) }
