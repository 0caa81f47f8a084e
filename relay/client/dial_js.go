//go:build js && wasm

package relayclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall/js"
)

// errWSClosed: the connection is closed (by CloseNow or after a failure).
var errWSClosed = errors.New("WebSocket closed")

// dial opens the browser's WebSocket to url (an http(s) scheme becomes
// ws(s)) and waits, up to ctx, for it to open.
func dial(ctx context.Context, url string, _ func(context.Context, string, string) (net.Conn, error)) (wsConn, error) {
	if rest, ok := strings.CutPrefix(url, "http://"); ok {
		url = "ws://" + rest
	} else if rest, ok := strings.CutPrefix(url, "https://"); ok {
		url = "wss://" + rest
	}
	ctor := js.Global().Get("WebSocket")
	if ctor.Type() != js.TypeFunction {
		return nil, errors.New("no WebSocket in this context")
	}
	var ws js.Value
	if err := catch(func() { ws = ctor.New(url) }); err != nil {
		return nil, fmt.Errorf("WebSocket %q: %w", url, err)
	}
	c := &browserConn{ws: ws, notify: make(chan struct{}, 1), closed: make(chan struct{})}
	c.limit.Store(32 << 10)
	opened := make(chan struct{})
	c.listen(opened)
	select {
	case <-opened:
		return c, nil
	case <-c.closed:
		return nil, fmt.Errorf("WebSocket %q: %w", url, c.closeErr())
	case <-ctx.Done():
		_ = c.CloseNow()
		return nil, ctx.Err()
	}
}

// browserConn is a wsConn over the browser's WebSocket. Its event handlers
// only queue and signal: they never block.
type browserConn struct {
	ws    js.Value
	funcs []js.Func // the event handlers, released on the close event
	limit atomic.Int64

	mu     sync.Mutex
	queue  []wsMessage
	err    error         // why closed is closed
	notify chan struct{} // capacity 1: a message was queued
	closed chan struct{} // closed once the connection is dead
}

type wsMessage struct {
	text bool
	p    []byte
}

// listen installs the event handlers; opened is closed by the open event.
func (c *browserConn) listen(opened chan struct{}) {
	c.ws.Set("binaryType", "arraybuffer")
	on := func(event string, f func(e js.Value)) {
		fn := js.FuncOf(func(_ js.Value, args []js.Value) any {
			e := js.Undefined()
			if len(args) > 0 {
				e = args[0]
			}
			f(e)
			return nil
		})
		c.funcs = append(c.funcs, fn)
		c.ws.Set(event, fn)
	}
	on("onopen", func(js.Value) {
		select {
		case <-opened:
		default:
			close(opened)
		}
	})
	on("onmessage", func(e js.Value) {
		var m wsMessage
		data := e.Get("data")
		if data.Type() == js.TypeString {
			m = wsMessage{text: true, p: []byte(data.String())}
		} else {
			u8 := js.Global().Get("Uint8Array").New(data)
			m.p = make([]byte, u8.Get("length").Int())
			js.CopyBytesToGo(m.p, u8)
		}
		c.mu.Lock()
		c.queue = append(c.queue, m)
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
	})
	on("onerror", func(js.Value) {
		// The event says nothing more; the close event follows.
		c.end(errors.New("WebSocket error"))
	})
	on("onclose", func(e js.Value) {
		c.end(fmt.Errorf("WebSocket closed: status %d, reason %q", e.Get("code").Int(), e.Get("reason").String()))
		for _, ev := range []string{"onopen", "onmessage", "onerror", "onclose"} {
			c.ws.Set(ev, js.Null())
		}
		for _, fn := range c.funcs {
			fn.Release()
		}
	})
}

// end marks the connection dead with err (the first cause wins).
func (c *browserConn) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.closed)
	}
}

func (c *browserConn) closeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Read returns the queued messages first, then the reason the connection
// closed.
func (c *browserConn) Read(ctx context.Context) (bool, []byte, error) {
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			m := c.queue[0]
			c.queue[0] = wsMessage{}
			c.queue = c.queue[1:]
			c.mu.Unlock()
			if limit := c.limit.Load(); int64(len(m.p)) > limit {
				c.close("message too big")
				return false, nil, fmt.Errorf("message of %d bytes, limit %d", len(m.p), limit)
			}
			return m.text, m.p, nil
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			return false, nil, err
		}
		select {
		case <-c.notify:
		case <-c.closed:
		case <-ctx.Done():
			return false, nil, ctx.Err()
		}
	}
}

// Write queues p in the browser's send buffer (it never waits).
func (c *browserConn) Write(_ context.Context, p []byte) error {
	if err := c.closeErr(); err != nil {
		return err
	}
	if err := catch(func() { c.ws.Call("send", string(p)) }); err != nil {
		c.close("send failed")
		return fmt.Errorf("WebSocket send: %w", err)
	}
	return nil
}

func (c *browserConn) SetReadLimit(n int64) { c.limit.Store(n) }

// CloseNow starts the closing handshake and returns at once; Reads and
// Writes fail from now on.
func (c *browserConn) CloseNow() error {
	c.close("")
	return nil
}

// close marks the connection closed and closes the socket with status 1000
// (a page may send only 1000 or 3000–4999) and reason.
func (c *browserConn) close(reason string) {
	c.end(errWSClosed)
	_ = catch(func() { c.ws.Call("close", 1000, reason) })
}

// catch runs f and returns a JavaScript exception it throws as an error.
func catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(js.Error); ok {
				err = e
				return
			}
			panic(r)
		}
	}()
	f()
	return nil
}
