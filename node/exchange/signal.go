package exchange

import (
	"context"

	"github.com/pion/webrtc/v4"
)

// SignalType is the kind of a signalling message.
type SignalType string

// Signal types.
const (
	// SignalOffer carries the dialer's SDP offer; it opens a session.
	SignalOffer SignalType = "offer"
	// SignalAnswer carries the answerer's SDP answer.
	SignalAnswer SignalType = "answer"
	// SignalCandidate carries one trickled ICE candidate, either way.
	SignalCandidate SignalType = "candidate"
	// SignalBye ends a session: the answerer refuses it (too many peers) or
	// either side gives up before the connection opens.
	SignalBye SignalType = "bye"
)

// SignalMsg is one signalling message between two peers. It is plain data
// with JSON tags, so a relay can carry it opaquely (for example as a JSON
// payload of its "signal" message).
type SignalMsg struct {
	// Session names the connection attempt; the dialer picks it at random,
	// so attempts between the same two peers never mix.
	Session string     `json:"session"`
	Type    SignalType `json:"type"`
	// FromAnswerer is set on messages the answering side sends (answer,
	// its candidates, its bye), so a node that both dials and answers can
	// tell which of its sessions a message belongs to.
	FromAnswerer bool                     `json:"fromAnswerer,omitempty"`
	SDP          string                   `json:"sdp,omitempty"`
	Candidate    *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Reason       string                   `json:"reason,omitempty"` // bye
}

// Signaler delivers signalling messages to other peers, typically through
// the relay. Messages to one peer must arrive in the order sent. Messages
// from other peers are handed to Transport.HandleSignal.
type Signaler interface {
	Send(ctx context.Context, to string, m SignalMsg) error
}

// SignalerFunc adapts a function to Signaler.
type SignalerFunc func(ctx context.Context, to string, m SignalMsg) error

// Send calls f.
func (f SignalerFunc) Send(ctx context.Context, to string, m SignalMsg) error { return f(ctx, to, m) }

// Finder finds peers that serve a site, typically by asking the relay.
type Finder interface {
	// Find returns up to n peer IDs serving site, none of them in exclude.
	Find(ctx context.Context, site string, n int, exclude []string) ([]string, error)
}

// FinderFunc adapts a function to Finder.
type FinderFunc func(ctx context.Context, site string, n int, exclude []string) ([]string, error)

// Find calls f.
func (f FinderFunc) Find(ctx context.Context, site string, n int, exclude []string) ([]string, error) {
	return f(ctx, site, n, exclude)
}
