//go:build js && wasm

package relayclient

import (
	"bytes"
	"context"
	"errors"
	"syscall/js"
	"testing"
	"time"
)

// fakeWebSocket is a stand-in for the browser's WebSocket: it opens on the
// next tick unless its URL says "refuse" (error then close events) or
// "hang" (never opens), records what is sent, and checks close codes as
// browsers do.
const fakeWebSocket = `(class {
  constructor(url) {
    this.url = url; this.sent = []; this.closedWith = null; this.binaryType = 'blob';
    globalThis.lastFakeWS = this;
    setTimeout(() => {
      if (url.includes('refuse')) { this.onerror({}); this.onclose({code: 1006, reason: '', wasClean: false}); }
      else if (!url.includes('hang')) this.onopen({});
    });
  }
  send(d) { if (this.closedWith) throw new Error('closed'); this.sent.push(d); }
  close(code, reason) {
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) throw new Error('InvalidAccessError');
    this.closedWith = {code, reason};
    setTimeout(() => this.onclose && this.onclose({code: code ?? 1005, reason: reason ?? '', wasClean: true}));
  }
})`

func withFakeWebSocket(t *testing.T) {
	t.Helper()
	g := js.Global()
	old := g.Get("WebSocket")
	g.Set("WebSocket", g.Call("eval", fakeWebSocket))
	t.Cleanup(func() { g.Set("WebSocket", old) })
}

func dialFake(t *testing.T, url string) (*browserConn, js.Value) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c.(*browserConn), js.Global().Get("lastFakeWS")
}

// TestDialURLScheme: only a leading http(s) scheme becomes ws(s); one in
// the query is left alone.
func TestDialURLScheme(t *testing.T) {
	withFakeWebSocket(t)
	for in, want := range map[string]string{
		"https://relay.test/ws?next=http://x": "wss://relay.test/ws?next=http://x",
		"http://relay.test/ws?next=https://x": "ws://relay.test/ws?next=https://x",
		"wss://relay.test/ws?next=https://x":  "wss://relay.test/ws?next=https://x",
	} {
		c, ws := dialFake(t, in)
		if got := ws.Get("url").String(); got != want {
			t.Errorf("dial %s: WebSocket to %s, want %s", in, got, want)
		}
		c.CloseNow()
	}
}

func TestBrowserConnMessages(t *testing.T) {
	withFakeWebSocket(t)
	c, ws := dialFake(t, "http://relay.test/ws")
	defer c.CloseNow()
	if got := ws.Get("url").String(); got != "ws://relay.test/ws" {
		t.Errorf("url %q", got)
	}
	if got := ws.Get("binaryType").String(); got != "arraybuffer" {
		t.Errorf("binaryType %q", got)
	}
	ctx := context.Background()
	if err := c.Write(ctx, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if got := ws.Get("sent").Index(0); got.Type() != js.TypeString || got.String() != `{"type":"ping"}` {
		t.Errorf("sent %v", got)
	}
	ws.Call("onmessage", map[string]any{"data": "héllo"})
	u8 := js.Global().Get("Uint8Array").New(3)
	js.CopyBytesToJS(u8, []byte{1, 2, 3})
	ws.Call("onmessage", map[string]any{"data": u8.Get("buffer")})
	text, p, err := c.Read(ctx)
	if err != nil || !text || string(p) != "héllo" {
		t.Fatalf("first read: %v %q %v", text, p, err)
	}
	text, p, err = c.Read(ctx)
	if err != nil || text || !bytes.Equal(p, []byte{1, 2, 3}) {
		t.Fatalf("second read: %v %v %v", text, p, err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, _, err := c.Read(rctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read with nothing queued: %v", err)
	}
}

func TestBrowserConnReadLimit(t *testing.T) {
	withFakeWebSocket(t)
	c, ws := dialFake(t, "ws://relay.test/ws")
	c.SetReadLimit(4)
	ws.Call("onmessage", map[string]any{"data": "12345"})
	if _, _, err := c.Read(context.Background()); err == nil {
		t.Fatal("message over the limit read")
	}
	if cw := ws.Get("closedWith"); cw.IsNull() || cw.Get("code").Int() != 1000 {
		t.Fatalf("socket not closed: %v", cw)
	}
	if err := c.Write(context.Background(), []byte("x")); err == nil {
		t.Fatal("write after close")
	}
}

func TestBrowserConnClose(t *testing.T) {
	withFakeWebSocket(t)
	c, ws := dialFake(t, "ws://relay.test/ws")
	ws.Call("onmessage", map[string]any{"data": "queued"})
	if err := c.CloseNow(); err != nil {
		t.Fatal(err)
	}
	if cw := ws.Get("closedWith"); cw.IsNull() || cw.Get("code").Int() != 1000 {
		t.Fatalf("socket not closed: %v", cw)
	}
	// What arrived before the close is still read, then the close.
	if _, p, err := c.Read(context.Background()); err != nil || string(p) != "queued" {
		t.Fatalf("read queued: %q %v", p, err)
	}
	if _, _, err := c.Read(context.Background()); !errors.Is(err, errWSClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := c.Write(context.Background(), []byte("x")); !errors.Is(err, errWSClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestBrowserConnPeerClose(t *testing.T) {
	withFakeWebSocket(t)
	c, ws := dialFake(t, "ws://relay.test/ws")
	ws.Call("onclose", map[string]any{"code": 1001, "reason": "going away", "wasClean": true})
	_, _, err := c.Read(context.Background())
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("1001")) {
		t.Fatalf("read after the relay closed: %v", err)
	}
}

func TestBrowserDialFailures(t *testing.T) {
	withFakeWebSocket(t)
	if _, err := dial(context.Background(), "ws://refuse.test/ws", nil); err == nil {
		t.Fatal("refused dial succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := dial(ctx, "ws://hang.test/ws", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hanging dial: %v", err)
	}
	if cw := js.Global().Get("lastFakeWS").Get("closedWith"); cw.IsNull() {
		t.Fatal("hanging socket left open")
	}
}
