//go:build !js

package relayclient

import (
	"context"

	"github.com/coder/websocket"
)

// dial opens a WebSocket to url with http.DefaultClient, compression off.
func dial(ctx context.Context, url string) (wsConn, error) {
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
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
