package serve

import (
	"context"
	"errors"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// Sentinel errors.
var (
	// ErrPassThrough: the service worker cannot answer from verified blocks;
	// the caller should fetch the request from the network, untouched.
	ErrPassThrough = errors.New("not served from the swarm")
	// ErrSource: a block source failed or lied; the operation may be
	// retried with another source.
	ErrSource = errors.New("block source failed")
	// ErrNoSource: every source was tried.
	ErrNoSource = errors.New("no block source left")
)

// Kind says where bytes came from.
type Kind int

// Kinds of source.
const (
	FromCache Kind = iota
	FromPeer
	FromOrigin
)

// String returns "cache", "peer" or "origin".
func (k Kind) String() string {
	switch k {
	case FromCache:
		return "cache"
	case FromPeer:
		return "peer"
	case FromOrigin:
		return "origin"
	}
	return "unknown"
}

// Source streams the blocks that answer a request, in the Trustless
// Gateway's order (node.Traverse's). It is not trusted: the session checks
// every block.
type Source interface {
	// Kind says whether the source is a peer or the origin, for Stats.
	Kind() Kind
	// Open starts the request. The stream ends when ctx is done.
	Open(ctx context.Context, req node.Request) (Stream, error)
}

// Stream is one answer's block stream.
type Stream interface {
	// Next returns the next block, io.EOF after the last.
	Next() (node.Block, error)
	// Close releases the stream; it may be called before the end.
	Close() error
}

// Cache is the persistent block cache. The session verifies what Get
// returns, so an implementation need not.
type Cache interface {
	// Get returns a block or an error wrapping node.ErrNotFound.
	Get(ctx context.Context, c cid.Cid) ([]byte, error)
	// Put stores a verified block. It must not block on I/O; it may drop
	// the block (the cache is an optimisation). data must not be modified
	// by the cache nor by the caller afterwards.
	Put(b node.Block)
	// Delete drops a block that failed verification.
	Delete(c cid.Cid)
}

// Stats counts the block bytes a response used, by where they came from:
// read from the cache, or received from a peer or from the origin's
// gateway (including blocks received and not used, such as the blocks of
// a path the cache already held). Safe for concurrent use.
type Stats struct {
	// RecordTime is set by the caller: how long choosing the root took.
	RecordTime time.Duration

	mu                          sync.Mutex
	cache, peer, origin         int64
	peerFails, origFails        int
	start                       time.Time
	headers, firstByte, bodyEnd time.Duration
	lastErr                     string
}

// StatsSnapshot is a copy of Stats' counters: bytes by source, how many
// sources failed (an error or a bad block) while serving, and how long
// after Serve was called the headers were ready, the first body byte was
// written and the body ended (0: not reached).
type StatsSnapshot struct {
	Cache, Peer, Origin        int64
	PeerFailures, OriginFailed int
	Headers, FirstByte, Done   time.Duration
	// LastError is the last source failure's text, "" if none.
	LastError string
}

// mark records the time of a milestone once.
func (s *Stats) mark(d *time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *d == 0 && !s.start.IsZero() {
		*d = max(time.Since(s.start), 1)
	}
}

func (s *Stats) add(k Kind, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch k {
	case FromCache:
		s.cache += int64(n)
	case FromPeer:
		s.peer += int64(n)
	case FromOrigin:
		s.origin += int64(n)
	}
}

func (s *Stats) failed(k Kind, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err.Error()
	if k == FromPeer {
		s.peerFails++
	} else {
		s.origFails++
	}
}

// Snapshot returns the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return StatsSnapshot{Cache: s.cache, Peer: s.peer, Origin: s.origin, PeerFailures: s.peerFails, OriginFailed: s.origFails,
		Headers: s.headers, FirstByte: s.firstByte, Done: s.bodyEnd, LastError: s.lastErr}
}
