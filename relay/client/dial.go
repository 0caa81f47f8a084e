//go:build !js

package relayclient

import (
	"context"
	"net/http"

	"github.com/coder/websocket"
)

func dial(ctx context.Context, url string, hc *http.Client) (*websocket.Conn, error) {
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient:      hc,
		CompressionMode: websocket.CompressionDisabled,
	})
	return ws, err
}
