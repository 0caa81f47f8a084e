//go:build !js

package exchange

import (
	"context"
	"fmt"
	"sync"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// rtcConn is a Conn over a detached pion data channel. Writes wait while
// the channel's send queue is above sendHighWater, and resume when pion
// reports it drained to sendLowWater.
type rtcConn struct {
	peer string // the peer's ID
	t    *Transport
	pc   *webrtc.PeerConnection
	dc   *webrtc.DataChannel
	raw  datachannel.ReadWriteCloser
	buf  []byte

	wmu    sync.Mutex
	low    chan struct{}
	closed chan struct{}
	once   sync.Once
}

// detach detaches dc; it runs in dc's OnOpen, as pion requires.
func detach(dc *webrtc.DataChannel) (any, error) { return dc.Detach() }

func newRTCConn(peer string, t *Transport, pc *webrtc.PeerConnection, dc *webrtc.DataChannel, detached any) (*rtcConn, error) {
	raw, ok := detached.(datachannel.ReadWriteCloser)
	if !ok {
		return nil, fmt.Errorf("data channel not detached: %w", ErrClosed)
	}
	c := &rtcConn{
		peer:   peer,
		t:      t,
		pc:     pc,
		dc:     dc,
		raw:    raw,
		buf:    make([]byte, MaxMessage),
		low:    make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	dc.SetBufferedAmountLowThreshold(sendLowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case c.low <- struct{}{}:
		default:
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			// Not on pion's callback goroutine: closing waits for pion.
			t.spawn(func() { _ = c.Close() })
		}
	})
	if !t.track(c) {
		_ = c.Close()
		return nil, ErrClosed
	}
	return c, nil
}

func (c *rtcConn) ReadMessage() ([]byte, error) {
	n, _, err := c.raw.ReadDataChannel(c.buf)
	if err != nil {
		return nil, fmt.Errorf("data channel: %w", err)
	}
	return c.buf[:n], nil
}

func (c *rtcConn) WriteMessage(ctx context.Context, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.waitRoom(ctx); err != nil {
		return err
	}
	if _, err := c.raw.Write(p); err != nil {
		return fmt.Errorf("data channel: %w", err)
	}
	return nil
}

func (c *rtcConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		_ = c.raw.Close()
		_ = c.pc.Close()
		c.t.untrack(c)
	})
	return nil
}
