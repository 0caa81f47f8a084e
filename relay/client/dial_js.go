//go:build js

package relayclient

import (
	"context"
	"net/http"

	"github.com/coder/websocket"
)

// dial uses the browser's WebSocket; hc does not apply.
func dial(ctx context.Context, url string, _ *http.Client) (*websocket.Conn, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	return ws, err
}
