package exchange

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/internal/logx"
	"github.com/hearthcdn/hearth/node"
)

// countingConn records every message written through it.
type countingConn struct {
	Conn
	mu   sync.Mutex
	msgs [][]byte
}

func (c *countingConn) WriteMessage(ctx context.Context, p []byte) error {
	c.mu.Lock()
	c.msgs = append(c.msgs, bytes.Clone(p))
	c.mu.Unlock()
	return c.Conn.WriteMessage(ctx, p)
}

func (c *countingConn) written() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.msgs...)
}

// TestBatchCoalesces: writes queued while the connection is busy leave as
// BATCH messages within MaxMessage, and the reader gets every message once,
// in order, including ones too big to batch and a SETTINGS (which a BATCH
// may not carry).
func TestBatchCoalesces(t *testing.T) {
	a, b := newPipe(1024)
	cc := &countingConn{Conn: a}
	bc := newBatchConn(cc)
	defer bc.Close()
	bc.enable()
	var want [][]byte
	for i := range 300 {
		m := appendMessage(nil, &message{Type: msgCredit, ID: uint64(i + 1), Credit: uint64(i)})
		if i%100 == 99 { // a full fragment: written on its own
			m = append([]byte{byte(msgMore)}, binary.AppendUvarint(nil, uint64(i+1))...)
			m = append(m, make([]byte, maxFragment)...)
		}
		if i == 150 { // SETTINGS queued behind others never joins a BATCH
			m = appendMessage(nil, &message{Type: msgSettings, Version: Version, Features: localFeatures})
		}
		want = append(want, m)
		if err := bc.WriteMessage(ctx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	var got [][]byte
	deadline := time.After(10 * time.Second)
	for len(got) < len(want) {
		var raw []byte
		done := make(chan struct{})
		go func() { raw, _ = b.ReadMessage(); close(done) }()
		select {
		case <-done:
		case <-deadline:
			t.Fatalf("read %d of %d messages", len(got), len(want))
		}
		if len(raw) > MaxMessage {
			t.Fatalf("message of %d bytes", len(raw))
		}
		if err := eachMessage(raw, func(m *message) error {
			got = append(got, appendMessage(nil, m))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("message %d differs", i)
		}
	}
	if n := len(cc.written()); n >= len(want)/2 {
		t.Errorf("%d writes for %d messages: not coalesced", n, len(want))
	}
}

// TestBatchOff: until enabled, every write goes through as it is.
func TestBatchOff(t *testing.T) {
	a, _ := newPipe(16)
	cc := &countingConn{Conn: a}
	bc := newBatchConn(cc)
	defer bc.Close()
	for i := range 5 {
		if err := bc.WriteMessage(ctx(t), appendMessage(nil, &message{Type: msgCancel, ID: uint64(i + 1)})); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range cc.written() {
		if msgType(m[0]) == msgBatch {
			t.Fatal("BATCH sent to a peer that did not accept it")
		}
	}
	if n := len(cc.written()); n != 5 {
		t.Fatalf("%d writes, want 5", n)
	}
}

// TestBatchWriteFails: a failed write fails the later ones and closes the
// connection.
func TestBatchWriteFails(t *testing.T) {
	a, b := newPipe(0)
	bc := newBatchConn(a)
	bc.enable()
	_ = b.Close()
	m := appendMessage(nil, &message{Type: msgCancel, ID: 1})
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = bc.WriteMessage(ctx(t), m)
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes kept succeeding on a closed connection")
	}
}

// TestSplitBatchRejects: hostile BATCH messages are protocol errors.
func TestSplitBatchRejects(t *testing.T) {
	cancel := appendMessage(nil, &message{Type: msgCancel, ID: 1})
	settings := appendMessage(nil, &message{Type: msgSettings, Version: Version})
	frame := func(ms ...[]byte) []byte {
		b := []byte{byte(msgBatch)}
		for _, m := range ms {
			b = binary.AppendUvarint(b, uint64(len(m)))
			b = append(b, m...)
		}
		return b
	}
	cases := map[string][]byte{
		"empty":          {byte(msgBatch)},
		"zero length":    {byte(msgBatch), 0},
		"length too big": {byte(msgBatch), 9, byte(msgCancel), 1},
		"bad varint":     {byte(msgBatch), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"nested":         frame(cancel, frame(cancel)),
		"settings":       frame(settings),
		"oversize":       frame(bytes.Repeat([]byte{byte(msgMore)}, MaxMessage)),
	}
	for name, b := range cases {
		if err := eachMessage(b, func(*message) error { return nil }); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want ErrProtocol", name, err)
		}
	}
	// An inner message that does not decode fails the same way.
	if err := eachMessage(frame(cancel, []byte{99}), func(*message) error { return nil }); !errors.Is(err, ErrProtocol) {
		t.Errorf("bad inner message: err = %v", err)
	}
}

// TestSettingsFeatures: the features field round-trips, and SETTINGS from
// a peer that predates it decode with none.
func TestSettingsFeatures(t *testing.T) {
	m, err := decodeMessage(appendMessage(nil, &message{Type: msgSettings, Version: Version, MaxRequests: 7, Features: featureBatch}))
	if err != nil || m.Features != featureBatch || m.MaxRequests != 7 {
		t.Fatalf("got %+v, %v", m, err)
	}
	old := []byte{byte(msgSettings), Version, 7}
	m, err = decodeMessage(old)
	if err != nil || m.Features != 0 {
		t.Fatalf("old SETTINGS: %+v, %v", m, err)
	}
}

// TestBatchedFetch: many small files fetched at once over one connection
// arrive whole, and the requests left in BATCH messages.
func TestBatchedFetch(t *testing.T) {
	dir := smallFilesDir(t, 200, 2<<10)
	st, root := importDir(t, dir)
	a, b := newPipe(4096)
	ca := &countingConn{Conn: a}
	srv := newTestServer(t, st, ServerConfig{})
	go func() { _ = srv.ServeConn(context.Background(), "requester", b) }()
	cc := newClientConn("server", ca, logx.Discard(), nil)
	defer cc.close(nil)
	if err := cc.sendSettings(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// Wait for the server's SETTINGS (batching on, request limit known).
	for i := 0; i < 500 && !cc.c.on.Load(); i++ {
		time.Sleep(2 * time.Millisecond)
	}
	if !cc.c.on.Load() {
		t.Fatal("server did not announce BATCH")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	sem := make(chan struct{}, cc.limit())
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			req := node.Request{Root: root, Path: []string{fmt.Sprintf("d%02d", i%32), fmt.Sprintf("f%04d.bin", i)}, Scope: node.ScopeEntity}
			s, err := cc.open(ctx(t), wireRequest{DAG: &req}, 1<<20)
			if err != nil {
				errs <- err
				return
			}
			n := 0
			for {
				it, err := s.next(ctx(t), 5*time.Second)
				if err != nil {
					if !errors.Is(err, io.EOF) {
						errs <- err
					}
					break
				}
				n += len(it.blk.Data)
			}
			if n == 0 {
				errs <- fmt.Errorf("file %d: no blocks", i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	batches := 0
	for _, m := range ca.written() {
		if msgType(m[0]) == msgBatch {
			batches++
		}
	}
	if batches == 0 {
		t.Errorf("no BATCH among %d writes", len(ca.written()))
	}
}

func ctx(t testing.TB) context.Context { return ctxT(t, 20*time.Second) }
