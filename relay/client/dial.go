//go:build !js

package relayclient

import (
	"context"
	"net"
	"net/http"

	"github.com/coder/websocket"
)

// dial opens a WebSocket to url with http.DefaultClient (or, with netDial,
// a client whose connections it opens), compression off.
func dial(ctx context.Context, url string, netDial func(context.Context, string, string) (net.Conn, error)) (wsConn, error) {
	opts := &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled}
	if netDial != nil {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: netDial}}
	}
	ws, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	return coderConn{ws}, nil
}

// coderConn is a wsConn over coder/websocket.
type coderConn struct{ ws *websocket.Conn }

func (c coderConn) Read(ctx context.Context) (bool, []byte, error) {
	typ, p, err := c.ws.Read(ctx)
	return typ == websocket.MessageText, p, err
}

func (c coderConn) Write(ctx context.Context, p []byte) error {
	return c.ws.Write(ctx, websocket.MessageText, p)
}

func (c coderConn) SetReadLimit(n int64) { c.ws.SetReadLimit(n) }

func (c coderConn) CloseNow() error { return c.ws.CloseNow() }
