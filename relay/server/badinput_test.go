package relayserver_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/hearthcdn/hearth/relay"
	relayclient "github.com/hearthcdn/hearth/relay/client"
	relayserver "github.com/hearthcdn/hearth/relay/server"
)

// healthyPair returns two clients that found each other; roundTrip between
// them shows the relay still serves everyone else.
func healthyPair(t *testing.T, r *testRelay) (a, b *relayclient.Client) {
	t.Helper()
	a, b = newClient(t, r, nil), newClient(t, r, nil)
	introduce(t, a, b)
	return a, b
}

func TestBadInputGetsErrors(t *testing.T) { forModes(t, testBadInputGetsErrors) }

func testBadInputGetsErrors(t *testing.T) {
	r := startRelay(t, relayserver.Config{MaxStrikes: 100}, nil)
	a, b := healthyPair(t, r)
	p := helloRaw(t, r)

	cases := []struct {
		name  string
		typ   websocket.MessageType
		frame string
		code  relay.Code
		id    uint64
	}{
		{"garbage", websocket.MessageText, "\x00\xffnot json at all", relay.CodeBadMessage, 0},
		{"truncated json", websocket.MessageText, `{"v":1,"type":"find","id":3,"site":`, relay.CodeBadMessage, 0},
		{"json array", websocket.MessageText, `[1,2,3]`, relay.CodeBadMessage, 0},
		{"binary frame", websocket.MessageBinary, `{"v":1,"type":"ping","id":4}`, relay.CodeBadMessage, 0},
		{"no version", websocket.MessageText, `{"type":"ping","id":5}`, relay.CodeUnsupportedVersion, 0},
		{"future version", websocket.MessageText, `{"v":2,"type":"ping","id":6}`, relay.CodeUnsupportedVersion, 0},
		{"no type", websocket.MessageText, `{"v":1,"id":7}`, relay.CodeBadMessage, 0},
		{"unknown type", websocket.MessageText, `{"v":1,"type":"teleport","id":8}`, relay.CodeUnknownType, 8},
		{"wrong field type", websocket.MessageText, `{"v":1,"type":"find","id":9,"site":42}`, relay.CodeBadMessage, 0},
		{"bad site", websocket.MessageText, `{"v":1,"type":"find","id":10,"site":"bnotakey","n":1}`, relay.CodeBadMessage, 10},
		{"find n=0", websocket.MessageText, `{"v":1,"type":"find","id":11,"site":"` + b.ID().String() + `"}`, relay.CodeBadMessage, 11},
		{"bad role", websocket.MessageText, `{"v":1,"type":"announce","id":12,"role":"king"}`, relay.CodeBadMessage, 12},
		{"bad root", websocket.MessageText, `{"v":1,"type":"announce","id":13,"role":"tab","capacity":1,"sites":[{"site":"` + b.ID().String() + `","roots":["nope"]}]}`, relay.CodeBadMessage, 13},
		{"signal no payload", websocket.MessageText, `{"v":1,"type":"signal","id":14,"to":"` + b.ID().String() + `"}`, relay.CodeBadMessage, 14},
		{"signal bad to", websocket.MessageText, `{"v":1,"type":"signal","id":15,"to":"x","payload":{}}`, relay.CodeBadMessage, 15},
		{"signal unrelated", websocket.MessageText, `{"v":1,"type":"signal","id":16,"to":"` + b.ID().String() + `","payload":{"sdp":"x"}}`, relay.CodeNotIntroduced, 16},
		{"signal unknown", websocket.MessageText, `{"v":1,"type":"signal","id":17,"to":"` + siteOf(newKey(t)).String() + `","payload":1}`, relay.CodeUnknownPeer, 17},
		{"second hello", websocket.MessageText, `{"v":1,"type":"hello","id":18}`, relay.CodeBadMessage, 18},
		{"too many excluded", websocket.MessageText, `{"v":1,"type":"find","id":19,"site":"` + b.ID().String() + `","n":1,"exclude":[` + strings.Repeat(`"x",`, relay.MaxExclude) + `"x"]}`, relay.CodeTooLarge, 19},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := p.sendRaw(tc.typ, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			m := p.expectError(tc.code)
			if m.ID != tc.id {
				t.Errorf("error id %d, want %d", m.ID, tc.id)
			}
			roundTrip(t, a, b, "after-"+tc.name)
		})
	}
	// The offender is still connected and served.
	p.send(&relay.Message{Type: relay.TypePing, ID: 99})
	if m := p.recv(); m.Type != relay.TypePong || m.ID != 99 {
		t.Fatalf("ping: %+v", m)
	}
	// Nothing leaked to the peer named in the refused signals.
	select {
	case s := <-b.Signals():
		t.Fatalf("b got %+v", s)
	default:
	}
}

func TestOffendersAreDropped(t *testing.T) { forModes(t, testOffendersAreDropped) }

func testOffendersAreDropped(t *testing.T) {
	r := startRelay(t, relayserver.Config{MaxMessageSize: 2048, MaxStrikes: 3}, nil)
	a, b := healthyPair(t, r)

	t.Run("oversized frame", func(t *testing.T) {
		p := helloRaw(t, r)
		big := `{"v":1,"type":"ping","pad":"` + strings.Repeat("x", 4096) + `"}`
		if err := p.sendRaw(websocket.MessageText, []byte(big)); err != nil {
			t.Fatal(err)
		}
		err := p.expectClosed()
		if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
			t.Fatalf("close: %v", err)
		}
		roundTrip(t, a, b, "after-oversized")
	})
	t.Run("bad hello signature", func(t *testing.T) {
		p := dialRaw(t, r)
		ch := p.recv()
		k := newKey(t)
		hello := relay.SignHello(k, ch.Nonce)
		hello.Sig[0] ^= 1
		p.send(hello)
		p.expectError(relay.CodeBadHello)
		p.expectClosed()
		roundTrip(t, a, b, "after-bad-hello")
	})
	t.Run("hello for another nonce", func(t *testing.T) {
		p := dialRaw(t, r)
		p.recv()
		p.send(relay.SignHello(newKey(t), bytes.Repeat([]byte{7}, relay.NonceSize)))
		p.expectError(relay.CodeBadHello)
		p.expectClosed()
	})
	t.Run("hello with a bad key", func(t *testing.T) {
		p := dialRaw(t, r)
		p.recv()
		p.send(&relay.Message{Type: relay.TypeHello, Key: "bzzzz", Sig: make([]byte, 64)})
		p.expectError(relay.CodeBadHello)
		p.expectClosed()
	})
	t.Run("request before hello", func(t *testing.T) {
		p := dialRaw(t, r)
		p.recv()
		p.send(&relay.Message{Type: relay.TypeFind, ID: 1, Site: b.ID().String(), N: 1})
		p.expectError(relay.CodeHelloRequired)
		p.expectClosed()
		roundTrip(t, a, b, "after-no-hello")
	})
	t.Run("garbage before hello", func(t *testing.T) {
		p := dialRaw(t, r)
		p.recv()
		for range 5 {
			if err := p.sendRaw(websocket.MessageText, []byte("garbage")); err != nil {
				break // the relay may already have closed
			}
		}
		p.expectClosed()
	})
	t.Run("strikes", func(t *testing.T) {
		p := helloRaw(t, r)
		for i := range 4 { // MaxStrikes is 3: the fourth closes
			if err := p.sendRaw(websocket.MessageText, []byte("garbage")); err != nil {
				t.Fatal(err)
			}
			p.expectError(relay.CodeBadMessage)
			_ = i
		}
		p.expectClosed()
		roundTrip(t, a, b, "after-strikes")
	})
	r.stop() // waits for every connection to end: the counters are final
	if n := r.counter("hearth_relay_disconnects_total", "too_big"); n != 1 {
		t.Errorf("too_big disconnects: %v", n)
	}
	if n := r.counter("hearth_relay_disconnects_total", "strikes"); n != 1 {
		t.Errorf("strike disconnects: %v", n)
	}
}

func TestFlood(t *testing.T) { forModes(t, testFlood) }

func testFlood(t *testing.T) {
	r := startRelay(t, relayserver.Config{MessageRate: 20, MessageBurst: 10, MaxStrikes: 50}, nil)
	a, b := healthyPair(t, r)
	p := helloRaw(t, r)
	msg := []byte(`{"v":1,"type":"ping","id":1}`)

	// Flood without reading: far more than burst + strikes. The relay
	// answers the burst, says rate_limited once, then drops the peer.
	sent := 0
	for ; sent < 5000; sent++ {
		if err := p.sendRaw(websocket.MessageText, msg); err != nil {
			break // dropped mid-flood
		}
	}
	pongs, limited := 0, 0
	var closeErr error
	for range 10000 {
		m, err := p.recvErr()
		if err != nil {
			closeErr = err
			break
		}
		switch {
		case m.Type == relay.TypePong:
			pongs++
		case m.Type == relay.TypeError && m.Code == relay.CodeRateLimited:
			limited++
		default:
			t.Fatalf("unexpected %+v", m)
		}
	}
	if closeErr == nil {
		t.Fatal("flooder not dropped")
	}
	// The burst (10, one spent on hello) plus what refills while the
	// flood lasts; one rate_limited error per run of refusals.
	if pongs < 9 || pongs > 40 || limited < 1 || limited > pongs {
		t.Fatalf("flood of %d: %d pongs, %d rate_limited errors", sent, pongs, limited)
	}
	// Everyone else is unaffected.
	for i := range 5 {
		roundTrip(t, a, b, "after-flood-"+string(rune('0'+i)))
	}
	r.stop()
	if n := r.counter("hearth_relay_disconnects_total", "strikes"); n != 1 {
		t.Errorf("strike disconnects: %v", n)
	}
}
