package exchange

import "context"

// Conn carries whole messages between two peers, reliably and in order: a
// detached WebRTC data channel (see Transport), or anything else that keeps
// message boundaries (tests use an in-memory pipe). The exchange protocol
// needs nothing more.
type Conn interface {
	// ReadMessage returns the next message. The slice is valid until the
	// next call. Only one goroutine reads.
	ReadMessage() ([]byte, error)
	// WriteMessage sends p as one message, blocking while the transport's
	// send buffer is full (back-pressure) until ctx is done. It is safe for
	// concurrent use; p may be reused when it returns.
	WriteMessage(ctx context.Context, p []byte) error
	// Close tears the connection down; blocked calls return errors.
	Close() error
}

// Dialer opens connections to peers by ID. *Transport is the WebRTC one.
type Dialer interface {
	Dial(ctx context.Context, peer string) (Conn, error)
}
