package exchange

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// A BATCH message carries several messages in one data-channel message:
// after its type byte, each inner message as a uvarint length and the
// message. A peer sends BATCH only to a peer whose SETTINGS carry
// featureBatch; an inner message is never SETTINGS or BATCH. Batching
// exists for the browser, where every RTCDataChannel.send and every message
// event costs the page's thread a task: a page asking for 200 small files
// at once sends a handful of messages, not 200.

const (
	// batchDelay is how long a write waits for others to join its BATCH
	// when the connection wrote within batchBusy before; an idle
	// connection writes at once.
	batchDelay = time.Millisecond
	batchBusy  = 5 * time.Millisecond
	// batchQueue bounds the bytes waiting to be written; writers beyond it
	// wait (the transport's back-pressure, one step removed).
	batchQueue = 4 * MaxMessage
)

// batchConn is a Conn whose writes are coalesced into BATCH messages once
// the peer accepts them (enable); before that it writes through. Reads
// pass through: the protocol layer splits BATCH messages (splitBatch).
//
// A coalesced write returns once queued; a failure of the underlying write
// fails every later write and closes the connection, which the read loop
// then reports.
type batchConn struct {
	Conn
	on atomic.Bool

	mu     sync.Mutex
	queue  [][]byte
	queued int
	err    error
	last   time.Time // the last flush

	wake  chan struct{} // capacity 1: the queue is not empty
	room  chan struct{} // capacity 1: the queue shrank
	stop  chan struct{}
	once  sync.Once
	start sync.Once
}

func newBatchConn(c Conn) *batchConn {
	return &batchConn{Conn: c, wake: make(chan struct{}, 1), room: make(chan struct{}, 1), stop: make(chan struct{})}
}

// enable starts coalescing (the peer's SETTINGS carry featureBatch).
func (b *batchConn) enable() {
	b.start.Do(func() {
		b.on.Store(true)
		go b.writeLoop() // owned by b: ends at Close or a write error
	})
}

// WriteMessage implements Conn.
func (b *batchConn) WriteMessage(ctx context.Context, p []byte) error {
	if !b.on.Load() {
		return b.Conn.WriteMessage(ctx, p)
	}
	q := append([]byte(nil), p...) // p may be reused once we return
	b.mu.Lock()
	for b.err == nil && b.queued > 0 && b.queued+len(q) > batchQueue {
		b.mu.Unlock()
		select {
		case <-b.room:
		case <-b.stop:
		case <-ctx.Done():
			return ctx.Err()
		}
		b.mu.Lock()
	}
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return err
	}
	b.queue = append(b.queue, q)
	b.queued += len(q)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return nil
}

// Close implements Conn.
func (b *batchConn) Close() error {
	b.once.Do(func() { close(b.stop) })
	return b.Conn.Close()
}

func (b *batchConn) writeLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // owned by writeLoop: ends with it or at Close
		select {
		case <-b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var buf []byte // BATCH bytes, reused
	for {
		select {
		case <-b.wake:
		case <-b.stop:
			b.fail(ErrClosed)
			return
		}
		b.mu.Lock()
		busy := time.Since(b.last) < batchBusy
		b.mu.Unlock()
		if busy {
			t := time.NewTimer(batchDelay)
			select {
			case <-t.C:
			case <-b.stop:
			}
			t.Stop()
		}
		b.mu.Lock()
		msgs := b.queue
		b.queue, b.queued = nil, 0
		b.last = time.Now()
		b.mu.Unlock()
		select {
		case b.room <- struct{}{}:
		default:
		}
		var err error
		if buf, err = b.flush(ctx, msgs, buf); err != nil {
			b.fail(err)
			_ = b.Close() // wakes every writer waiting for room
			return
		}
	}
}

// fail records err for every later write and wakes writers waiting for room.
func (b *batchConn) fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.queue, b.queued = nil, 0
	b.mu.Unlock()
	select {
	case b.room <- struct{}{}:
	default:
	}
}

// flush writes msgs in order, as few messages as MaxMessage allows. A
// group of one is written as it is; SETTINGS, which may not travel in a
// BATCH, and a message too big to share one (a full BLOCK fragment) are
// always written alone. buf is reused for the BATCHes; flush returns it.
func (b *batchConn) flush(ctx context.Context, msgs [][]byte, buf []byte) ([]byte, error) {
	var group [][]byte
	size := 1 // the BATCH's type byte, then each part's length and bytes
	send := func() error {
		var err error
		switch len(group) {
		case 0:
		case 1:
			err = b.Conn.WriteMessage(ctx, group[0])
		default:
			buf = append(buf[:0], byte(msgBatch))
			for _, m := range group {
				buf = binary.AppendUvarint(buf, uint64(len(m)))
				buf = append(buf, m...)
			}
			err = b.Conn.WriteMessage(ctx, buf)
		}
		group, size = group[:0], 1
		return err
	}
	for _, m := range msgs {
		part := uvarintLen(len(m)) + len(m)
		if msgType(m[0]) == msgSettings || 1+part > MaxMessage {
			if err := send(); err != nil {
				return buf, err
			}
			if err := b.Conn.WriteMessage(ctx, m); err != nil {
				return buf, err
			}
			continue
		}
		if size+part > MaxMessage {
			if err := send(); err != nil {
				return buf, err
			}
		}
		group = append(group, m)
		size += part
	}
	return buf, send()
}

// uvarintLen is the length of n as a uvarint.
func uvarintLen(n int) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}

// splitBatch returns the messages a BATCH message carries (aliasing b), or
// an error wrapping ErrProtocol.
func splitBatch(b []byte) ([][]byte, error) {
	if len(b) == 0 || msgType(b[0]) != msgBatch {
		return nil, fmt.Errorf("not a BATCH: %w", ErrProtocol)
	}
	if len(b) > MaxMessage {
		return nil, fmt.Errorf("BATCH of %d bytes: %w", len(b), ErrProtocol)
	}
	b = b[1:]
	var out [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n == 0 || n > uint64(len(b)-k) {
			return nil, fmt.Errorf("BATCH: bad length: %w", ErrProtocol)
		}
		m := b[k : k+int(n)]
		if t := msgType(m[0]); t == msgBatch || t == msgSettings {
			return nil, fmt.Errorf("%s inside a BATCH: %w", t, ErrProtocol)
		}
		out = append(out, m)
		b = b[k+int(n):]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty BATCH: %w", ErrProtocol)
	}
	return out, nil
}

// eachMessage decodes b, a message or a BATCH of them, and hands each to
// f in order, stopping at the first error.
func eachMessage(b []byte, f func(*message) error) error {
	if len(b) > 0 && msgType(b[0]) == msgBatch {
		msgs, err := splitBatch(b)
		if err != nil {
			return err
		}
		for _, mb := range msgs {
			m, err := decodeMessage(mb)
			if err != nil {
				return err
			}
			if err := f(&m); err != nil {
				return err
			}
		}
		return nil
	}
	m, err := decodeMessage(b)
	if err != nil {
		return err
	}
	return f(&m)
}
