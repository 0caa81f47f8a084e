//go:build !js

package relayserver_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hearthcdn/hearth/relay"
	relayserver "github.com/hearthcdn/hearth/relay/server"
)

// wirePeer speaks WebSocket by hand over a bare TCP connection, so that it
// can misbehave below the WebSocket layer: never answer pings, send broken
// frames.
type wirePeer struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
	id string
}

func dialWire(t *testing.T, r *testRelay) *wirePeer {
	t.Helper()
	return dialWireWith(t, r, nil)
}

// dialWireWith sends extra right behind the upgrade request, before the
// response: bytes net/http reads ahead and hands over at hijack.
func dialWireWith(t *testing.T, r *testRelay, extra []byte) *wirePeer {
	t.Helper()
	c, err := net.Dial("tcp", r.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// Small socket buffers, so that a peer that stops reading pushes
	// back on the relay soon.
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	t.Cleanup(func() { _ = c.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := fmt.Sprintf("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		r.ln.Addr(), base64.StdEncoding.EncodeToString(key[:]))
	if _, err := c.Write(append([]byte(req), extra...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	return &wirePeer{t: t, c: c, br: br}
}

// writeFrame writes one masked frame (opcode 1 = text).
func (w *wirePeer) writeFrame(opcode byte, payload []byte) error {
	hdr := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	mask := [4]byte{1, 2, 3, 4}
	hdr = append(hdr, mask[:]...)
	masked := make([]byte, len(payload))
	for i, b := range payload {
		masked[i] = b ^ mask[i%4]
	}
	_, err := w.c.Write(append(hdr, masked...))
	return err
}

// readFrame reads one frame: its opcode and payload.
func (w *wirePeer) readFrame() (byte, []byte) {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(testTimeout))
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		w.t.Fatal(err)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(w.br, b[:])
		n = int(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, _ = io.ReadFull(w.br, b[:])
		n = int(binary.BigEndian.Uint64(b[:]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(w.br, p); err != nil {
		w.t.Fatal(err)
	}
	return h[0] & 0x0f, p
}

// readText reads frames until a text frame and decodes it; pings are read
// and ignored (never answered).
func (w *wirePeer) readText() *relay.Message {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(testTimeout))
	for range 100 {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			w.t.Fatal(err)
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			_, _ = io.ReadFull(w.br, b[:])
			n = int(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			_, _ = io.ReadFull(w.br, b[:])
			n = int(binary.BigEndian.Uint64(b[:]))
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(w.br, p); err != nil {
			w.t.Fatal(err)
		}
		if h[0]&0x0f == 1 {
			var m relay.Message
			if err := relay.Decode(p, &m); err != nil {
				w.t.Fatal(err)
			}
			return &m
		}
	}
	w.t.Fatal("no text frame")
	return nil
}

func (w *wirePeer) hello() {
	w.t.Helper()
	ch := w.readText()
	key := newKey(w.t)
	w.id = siteOf(key).String()
	w.send(relay.SignHello(key, ch.Nonce))
	if m := w.readText(); m.Type != relay.TypeWelcome {
		w.t.Fatalf("welcome: %+v", m)
	}
}

func (w *wirePeer) send(m *relay.Message) {
	w.t.Helper()
	b, err := relay.Encode(m)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.writeFrame(1, b); err != nil {
		w.t.Fatal(err)
	}
}

// closed starts draining the connection (pings read, never answered) and
// returns a channel closed when the relay closes it.
func (w *wirePeer) closed() <-chan struct{} {
	done := make(chan struct{})
	_ = w.c.SetReadDeadline(time.Now().Add(testTimeout))
	go func() {
		defer close(done)
		_, _ = io.Copy(io.Discard, w.br)
	}()
	w.t.Cleanup(func() { _ = w.c.Close(); <-done })
	return done
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(testTimeout):
		t.Fatalf("%s: connection not closed", what)
	}
}

func TestIdleAndHelloTimeouts(t *testing.T) { forModes(t, testIdleAndHelloTimeouts) }

func testIdleAndHelloTimeouts(t *testing.T) {
	const idle, hello = 400 * time.Millisecond, 300 * time.Millisecond
	r := startRelay(t, relayserver.Config{IdleTimeout: idle, HelloTimeout: hello}, nil)

	// A peer that never says hello.
	start := time.Now()
	silent := dialWire(t, r)
	waitClosed(t, silent.closed(), "no hello")
	if d := time.Since(start); d < hello {
		t.Errorf("closed after %v, before the hello timeout", d)
	}

	// A peer that says hello, then never answers pings.
	start = time.Now()
	dead := dialWire(t, r)
	dead.hello()
	waitClosed(t, dead.closed(), "dead peer")
	if d := time.Since(start); d < idle {
		t.Errorf("closed after %v, before the idle timeout", d)
	}

	// A peer whose WebSocket answers pings stays connected, silent as it
	// is at the application level, for several idle timeouts.
	alive := helloRaw(t, r)
	readErr := make(chan error, 1)
	go func() {
		_, _, err := alive.ws.Read(context.Background()) // answers pings while it waits
		readErr <- err
	}()
	select {
	case err := <-readErr:
		t.Fatalf("live peer dropped: %v", err)
	case <-time.After(3 * idle):
	}
	_ = alive.ws.CloseNow()
	<-readErr

	r.stop()
	if n := r.counter("hearth_relay_disconnects_total", "hello_timeout"); n != 1 {
		t.Errorf("hello timeouts: %v", n)
	}
	if n := r.counter("hearth_relay_disconnects_total", "idle"); n != 1 {
		t.Errorf("idle disconnects: %v", n)
	}
}

func TestBrokenFrames(t *testing.T) { forModes(t, testBrokenFrames) }

func TestPipelinedAfterHandshake(t *testing.T) { forModes(t, testPipelinedAfterHandshake) }

func testPipelinedAfterHandshake(t *testing.T) {
	r := startRelay(t, relayserver.Config{}, nil)
	ping := []byte{0x89, 0x84, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'y' ^ 3, '!' ^ 4}
	w := dialWireWith(t, r, ping)
	if op, _ := w.readFrame(); op != 0x1 {
		t.Fatalf("first frame opcode %d, want the challenge", op)
	}
	if op, p := w.readFrame(); op != 0xa || string(p) != "hey!" {
		t.Fatalf("frame %d %q, want the pong", op, p)
	}
}

func testBrokenFrames(t *testing.T) {
	r := startRelay(t, relayserver.Config{}, nil)
	a, b := healthyPair(t, r)
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"unmasked", []byte{0x81, 0x02, '{', '}'}},
		{"reserved opcode", []byte{0x83, 0x80, 1, 2, 3, 4}},
		{"rsv bits", []byte{0xf1, 0x80, 1, 2, 3, 4}},
		{"fragmented ping", []byte{0x09, 0x80, 1, 2, 3, 4}},
		{"continuation first", []byte{0x80, 0x80, 1, 2, 3, 4}},
		{"garbage bytes", []byte("GET / HTTP/1.1\r\n\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := dialWire(t, r)
			w.hello()
			done := w.closed()
			if _, err := w.c.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, done, tc.name)
			roundTrip(t, a, b, "after-"+strings.ReplaceAll(tc.name, " ", "-"))
		})
	}
}

func TestConnsPerIP(t *testing.T) {
	r := startRelay(t, relayserver.Config{MaxConnsPerIP: 2}, nil)
	dialRaw(t, r)
	dialRaw(t, r)
	_, resp, err := websocket.Dial(ctxT(t), r.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third connection: %v %v", err, resp)
	}
	if n := r.counter("hearth_relay_refused_total", "per_ip"); n != 1 {
		t.Errorf("refused: %v", n)
	}
}

func TestSameKeyReplaces(t *testing.T) { forModes(t, testSameKeyReplaces) }

func testSameKeyReplaces(t *testing.T) {
	r := startRelay(t, relayserver.Config{}, nil)
	key := newKey(t)
	first := dialRaw(t, r)
	first.send(relay.SignHello(key, first.recv().Nonce))
	first.recv()
	second := dialRaw(t, r)
	second.send(relay.SignHello(key, second.recv().Nonce))
	if w := second.recv(); w.Type != relay.TypeWelcome {
		t.Fatalf("second: %+v", w)
	}
	first.expectError(relay.CodeReplaced)
	first.expectClosed()
	// The key now belongs to the second connection.
	second.send(&relay.Message{Type: relay.TypePing, ID: 1})
	if m := second.recv(); m.Type != relay.TypePong {
		t.Fatalf("ping: %+v", m)
	}
}

// TestSlowReaderDropped: a peer that stops reading fills its queue and is
// dropped; the peer flooding it and everyone else go on.
func TestSlowReaderDropped(t *testing.T) { forModes(t, testSlowReaderDropped) }

func testSlowReaderDropped(t *testing.T) {
	r := startRelay(t, relayserver.Config{
		SendQueue: 128 << 10, WriteTimeout: 300 * time.Millisecond,
		MessageRate: 1e6, MessageBurst: 1e6, MaxMessageSize: 64 << 10,
	}, nil)
	a, b := healthyPair(t, r)
	sender := newClient(t, r, nil)

	// The slow peer announces, is found, then never reads again.
	slow := dialWire(t, r)
	slow.hello()
	site := siteOf(newKey(t))
	slow.send(&relay.Message{Type: relay.TypeAnnounce, ID: 1, Role: relay.RoleTab, Capacity: 1,
		Sites: []relay.SiteRoots{{Site: site.String()}}})
	if m := slow.readText(); m.Type != relay.TypeOK {
		t.Fatalf("announce: %+v", m)
	}
	peers, err := sender.Find(ctxT(t), site, 1, nil)
	if err != nil || len(peers) != 1 || peers[0].ID.String() != slow.id {
		t.Fatalf("find: %v %+v", err, peers)
	}
	slowID := peers[0].ID

	payload := json.RawMessage(`{"pad":"` + strings.Repeat("x", 60<<10) + `"}`)
	dropped := false
	deadline := time.Now().Add(testTimeout)
	for i := 0; i < 2000 && !dropped && time.Now().Before(deadline); i++ {
		if err := sender.Signal(ctxT(t), slowID, payload); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-sender.Signals():
			dropped = errors.Is(s.Err, relay.ErrUnknownPeer)
		default:
		}
		if i%20 == 0 {
			start := time.Now()
			roundTrip(t, a, b, fmt.Sprintf("during-%d", i))
			if d := time.Since(start); d > time.Second {
				t.Fatalf("relay stalled for %v", d)
			}
		}
	}
	if !dropped {
		// The last signals may still be on their way back.
		s := recvSignal(t, sender)
		dropped = errors.Is(s.Err, relay.ErrUnknownPeer)
	}
	if !dropped {
		t.Fatal("slow reader not dropped")
	}
	roundTrip(t, a, b, "after")
	r.stop()
	if n := r.counter("hearth_relay_disconnects_total", "slow"); n < 1 {
		t.Errorf("slow disconnects: %v", n)
	}
}

func TestTrustProxy(t *testing.T) {
	r := startRelay(t, relayserver.Config{MaxConnsPerIP: 1, TrustProxy: true}, nil)
	dial := func(xff string) (*http.Response, error) {
		h := http.Header{}
		h.Set("X-Forwarded-For", xff)
		ws, resp, err := websocket.Dial(ctxT(t), r.url, &websocket.DialOptions{HTTPHeader: h})
		if err == nil {
			t.Cleanup(func() { _ = ws.CloseNow() })
		}
		return resp, err
	}
	// Two clients behind the same proxy (the same connection address)
	// count apart; the entry the proxy appended is the last one.
	if _, err := dial("203.0.113.9, 198.51.100.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := dial("198.51.100.2"); err != nil {
		t.Fatal(err)
	}
	if resp, err := dial("203.0.113.7, 198.51.100.2"); err == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second connection from 198.51.100.2: %v", err)
	}
}
