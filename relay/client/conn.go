package relayclient

import "context"

// wsConn is one WebSocket connection to the relay: coder/websocket in native
// builds (dial.go), the browser's own WebSocket on js (dial_js.go).
type wsConn interface {
	// Read waits, up to ctx, for the next message and returns it with
	// whether it came as a text frame. A message over the read limit
	// fails and closes the connection.
	Read(ctx context.Context) (text bool, p []byte, err error)
	// Write sends p as one text message, bounded by ctx.
	Write(ctx context.Context, p []byte) error
	// SetReadLimit bounds a message from the relay, in bytes.
	SetReadLimit(n int64)
	// CloseNow closes the connection without waiting for the peer.
	CloseNow() error
}
