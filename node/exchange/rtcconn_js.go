//go:build js && wasm

package exchange

import (
	"context"
	"fmt"
	"sync"
	"syscall/js"

	"github.com/pion/webrtc/v4"
)

// maxQueuedBytes bounds what a connection buffers between the browser's
// message events and ReadMessage. Flow control keeps an honest peer far
// below it; a peer that ignores credit is cut off.
const maxQueuedBytes = 64 << 20

// rtcConn is a Conn over a browser RTCDataChannel. The message handler
// copies each message into Go and queues it: it never blocks, and messages
// keep their order (pion's own OnMessage starts a goroutine per message,
// which does not).
type rtcConn struct {
	peer  string // the peer's ID
	t     *Transport
	pc    *webrtc.PeerConnection
	dc    *webrtc.DataChannel
	v     js.Value
	onMsg js.Func
	onEnd js.Func

	mu     sync.Mutex
	queue  [][]byte
	queued int
	notify chan struct{}

	wmu    sync.Mutex
	low    chan struct{}
	closed chan struct{}
	ended  sync.Once // closed is closed
	once   sync.Once // Close ran
}

// detach is a no-op in the browser: the connection reads the channel's
// message events itself.
func detach(*webrtc.DataChannel) (any, error) { return nil, nil }

func newRTCConn(peer string, t *Transport, pc *webrtc.PeerConnection, dc *webrtc.DataChannel, _ any) (*rtcConn, error) {
	c := &rtcConn{
		peer:   peer,
		t:      t,
		pc:     pc,
		dc:     dc,
		v:      dc.JSValue(),
		notify: make(chan struct{}, 1),
		low:    make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	c.v.Set("binaryType", "arraybuffer")
	c.onMsg = js.FuncOf(func(_ js.Value, args []js.Value) any {
		data := args[0].Get("data")
		if data.Type() == js.TypeString {
			c.end() // the protocol is binary
			return nil
		}
		u8 := js.Global().Get("Uint8Array").New(data)
		b := make([]byte, u8.Get("length").Int())
		js.CopyBytesToGo(b, u8)
		c.mu.Lock()
		c.queue = append(c.queue, b)
		c.queued += len(b)
		over := c.queued > maxQueuedBytes
		c.mu.Unlock()
		if over {
			c.end()
			return nil
		}
		select {
		case c.notify <- struct{}{}:
		default:
		}
		return nil
	})
	c.onEnd = js.FuncOf(func(js.Value, []js.Value) any {
		c.end()
		return nil
	})
	c.v.Set("onmessage", c.onMsg)
	c.v.Set("onclose", c.onEnd)
	dc.SetBufferedAmountLowThreshold(sendLowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case c.low <- struct{}{}:
		default:
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			c.end()
		}
	})
	if !t.track(c) {
		_ = c.Close()
		return nil, ErrClosed
	}
	return c, nil
}

// end marks the connection dead without blocking (it runs in JS event
// handlers); Close releases the resources.
func (c *rtcConn) end() {
	c.ended.Do(func() { close(c.closed) })
}

func (c *rtcConn) ReadMessage() ([]byte, error) {
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			b := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			c.queued -= len(b)
			c.mu.Unlock()
			return b, nil
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.closed:
			c.mu.Lock()
			n := len(c.queue)
			c.mu.Unlock()
			if n == 0 {
				return nil, fmt.Errorf("data channel: %w", ErrClosed)
			}
		}
	}
}

func (c *rtcConn) WriteMessage(ctx context.Context, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.waitRoom(ctx); err != nil {
		return err
	}
	if err := c.dc.Send(p); err != nil {
		return fmt.Errorf("data channel: %w", err)
	}
	return nil
}

func (c *rtcConn) Close() error {
	c.once.Do(func() {
		c.end()
		c.v.Set("onmessage", js.Null())
		c.v.Set("onclose", js.Null())
		c.onMsg.Release()
		c.onEnd.Release()
		_ = c.dc.Close()
		_ = c.pc.Close()
		c.t.untrack(c)
	})
	return nil
}
