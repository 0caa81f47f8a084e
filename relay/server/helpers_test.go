package relayserver_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	cid "github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
	relayclient "github.com/hearthcdn/hearth/relay/client"
	relayserver "github.com/hearthcdn/hearth/relay/server"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

type testRelay struct {
	t   *testing.T
	srv *relayserver.Server
	hs  *http.Server
	ln  net.Listener
	url string // ws://127.0.0.1:port/ws
	reg *prometheus.Registry
}

// forModes runs f against each way the relay can drive connections: event
// loops with coalesced writes (the default), event loops writing at once,
// and blocking mode (a goroutine per connection, as for TLS). startRelay
// reads the mode from the subtest's name.
func forModes(t *testing.T, f func(*testing.T)) {
	for _, mode := range []string{"loop", "immediate", "blocking"} {
		t.Run(mode, f)
	}
}

// startRelay serves a relay on ln (or a fresh 127.0.0.1 listener) until
// the test ends or stop is called.
func startRelay(t *testing.T, cfg relayserver.Config, ln net.Listener) *testRelay {
	t.Helper()
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	switch {
	case strings.Contains(t.Name(), "/blocking"):
		cfg.Loops = -1
	case strings.Contains(t.Name(), "/immediate"):
		cfg.Coalesce = -1
	}
	srv, err := relayserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &testRelay{t: t, srv: srv, ln: ln, reg: cfg.Registry, url: "ws://" + ln.Addr().String() + "/ws"}
	r.hs = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: testTimeout}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = r.hs.Serve(ln)
	}()
	t.Cleanup(func() { r.stop(); <-served })
	return r
}

func (r *testRelay) stop() {
	_ = r.hs.Close()
	if err := r.srv.Close(); err != nil {
		r.t.Error(err)
	}
}

// counter returns the value of a counter (or gauge) metric with the given
// label value ("" for none), 0 if absent.
func (r *testRelay) counter(name, label string) float64 {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func siteOf(k ed25519.PrivateKey) node.SiteID { return node.SiteIDOf(k.Public().(ed25519.PublicKey)) }

func testCID(t *testing.T, s string) cid.Cid {
	t.Helper()
	h, err := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

// newClient connects a relay client and waits until it is ready.
func newClient(t *testing.T, r *testRelay, mod func(*relayclient.Config)) *relayclient.Client {
	t.Helper()
	cfg := relayclient.Config{URL: r.url, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	c, err := relayclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.WaitReady(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return c
}

// recvSignal waits for the next signal on c.
func recvSignal(t *testing.T, c *relayclient.Client) relayclient.Signal {
	t.Helper()
	select {
	case s, ok := <-c.Signals():
		if !ok {
			t.Fatal("signals channel closed")
		}
		return s
	case <-time.After(testTimeout):
		t.Fatal("no signal")
	}
	return relayclient.Signal{}
}

// rawPeer speaks the protocol by hand, for bad input.
type rawPeer struct {
	t   *testing.T
	ws  *websocket.Conn
	key ed25519.PrivateKey
	id  string
}

func dialRaw(t *testing.T, r *testRelay) *rawPeer {
	t.Helper()
	ws, _, err := websocket.Dial(ctxT(t), r.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &rawPeer{t: t, ws: ws}
}

// helloRaw dials and completes hello.
func helloRaw(t *testing.T, r *testRelay) *rawPeer {
	t.Helper()
	p := dialRaw(t, r)
	ch := p.recv()
	if ch.Type != relay.TypeChallenge {
		t.Fatalf("first message %q", ch.Type)
	}
	p.key = newKey(t)
	p.id = siteOf(p.key).String()
	p.send(relay.SignHello(p.key, ch.Nonce))
	if w := p.recv(); w.Type != relay.TypeWelcome || w.Peer != p.id {
		t.Fatalf("welcome: %+v", w)
	}
	return p
}

func (p *rawPeer) sendRaw(typ websocket.MessageType, b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return p.ws.Write(ctx, typ, b)
}

func (p *rawPeer) send(m *relay.Message) {
	p.t.Helper()
	b, err := relay.Encode(m)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.sendRaw(websocket.MessageText, b); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawPeer) recvErr() (*relay.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, b, err := p.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	var m relay.Message
	if err := relay.Decode(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func (p *rawPeer) recv() *relay.Message {
	p.t.Helper()
	m, err := p.recvErr()
	if err != nil {
		p.t.Fatal(err)
	}
	return m
}

// expectError reads the next message and checks it is an error with code.
func (p *rawPeer) expectError(code relay.Code) *relay.Message {
	p.t.Helper()
	m := p.recv()
	if m.Type != relay.TypeError || m.Code != code {
		p.t.Fatalf("want error %s, got %+v", code, m)
	}
	return m
}

// expectClosed reads until the relay closes the connection (bounded by
// count and time) and returns the close error.
func (p *rawPeer) expectClosed() error {
	p.t.Helper()
	for range 10000 {
		if _, err := p.recvErr(); err != nil {
			if errors.Is(err, relay.ErrBadMessage) {
				continue
			}
			return err
		}
	}
	p.t.Fatal("connection not closed")
	return nil
}

// roundTrip checks that peer a can still signal peer b through the relay.
func roundTrip(t *testing.T, a, b *relayclient.Client, note string) {
	t.Helper()
	payload := json.RawMessage(`{"note":"` + note + `"}`)
	if err := a.Signal(ctxT(t), b.ID(), payload); err != nil {
		t.Fatal(err)
	}
	s := recvSignal(t, b)
	if s.Err != nil || s.Peer != a.ID() || !strings.Contains(string(s.Payload), note) {
		t.Fatalf("got %+v", s)
	}
}

// introduce makes a find b through the relay (b announces a fresh site).
func introduce(t *testing.T, a, b *relayclient.Client) node.SiteID {
	t.Helper()
	site := siteOf(newKey(t))
	if err := b.Announce(ctxT(t), relayclient.Announcement{Role: relay.RoleSeeder, Capacity: 1,
		Sites: []relayclient.SiteRoots{{Site: site}}}); err != nil {
		t.Fatal(err)
	}
	peers, err := a.Find(ctxT(t), site, 1, nil)
	if err != nil || len(peers) != 1 || peers[0].ID != b.ID() {
		t.Fatalf("find: %v %+v", err, peers)
	}
	return site
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
