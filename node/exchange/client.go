package exchange

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/internal/logx"
	"github.com/hearthcdn/hearth/node"
)

// defaultPeerRequests is how many requests a requester keeps in flight on a
// connection before the server's SETTINGS say how many it serves.
const defaultPeerRequests = 8

// clientConn is the requester's side of one connection: it sends requests,
// reassembles the block fragments of every open request and hands them to
// the request's stream, and grants credit as they are consumed. Its read
// loop never blocks on a consumer: per-request credit bounds what it buffers.
type clientConn struct {
	peer string
	c    *batchConn
	log  *logx.Logger
	clk  Clock

	mu       sync.Mutex
	streams  map[uint64]*stream
	nextID   uint64
	maxReqs  int // the server's SETTINGS; defaultPeerRequests until known
	closeErr error

	closed   chan struct{} // closed when the connection is shutting down
	done     chan struct{} // closed when the read loop has returned
	closeOne sync.Once

	bytesIn  atomic.Int64 // block bytes received
	lastRecv atomic.Int64 // unix nanos of the last message
}

// newClientConn starts reading c; clk (nil: the system clock) times
// stalls.
func newClientConn(peer string, c Conn, log *logx.Logger, clk Clock) *clientConn {
	cc := &clientConn{
		peer:    peer,
		c:       newBatchConn(c),
		log:     log,
		clk:     orSystem(clk),
		streams: make(map[uint64]*stream),
		nextID:  1,
		maxReqs: defaultPeerRequests,
		closed:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	cc.lastRecv.Store(cc.clk.Now().UnixNano())
	go cc.readLoop() // owned by cc: close waits for done
	return cc
}

// sendSettings announces this side (a requester serves nothing).
func (cc *clientConn) sendSettings(ctx context.Context) error {
	b := appendMessage(nil, &message{Type: msgSettings, Version: Version, Features: localFeatures})
	return cc.c.WriteMessage(ctx, b)
}

// limit returns how many requests the server accepts at once.
func (cc *clientConn) limit() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.maxReqs
}

// isClosed reports whether the connection has failed or been closed.
func (cc *clientConn) isClosed() bool {
	select {
	case <-cc.closed:
		return true
	default:
		return false
	}
}

// close shuts the connection down with cause and waits for the read loop.
func (cc *clientConn) close(cause error) {
	cc.fail(cause)
	<-cc.done
}

// fail records cause, closes the transport and fails every open stream.
func (cc *clientConn) fail(cause error) {
	cc.closeOne.Do(func() {
		if cause == nil {
			cause = ErrClosed
		}
		cc.mu.Lock()
		cc.closeErr = cause
		streams := cc.streams
		cc.streams = make(map[uint64]*stream)
		cc.mu.Unlock()
		close(cc.closed)
		_ = cc.c.Close()
		for _, s := range streams {
			s.failWith(fmt.Errorf("connection to %s: %w", cc.peer, cause))
		}
	})
}

func (cc *clientConn) readLoop() {
	defer close(cc.done)
	for {
		b, err := cc.c.ReadMessage()
		if err != nil {
			cc.fail(fmt.Errorf("reading: %w: %w", ErrClosed, err))
			return
		}
		cc.lastRecv.Store(cc.clk.Now().UnixNano())
		err = eachMessage(b, cc.dispatch)
		if err != nil {
			cc.log.Debug("exchange: closing connection", "peer", cc.peer, "err", err)
			cc.fail(err)
			return
		}
	}
}

func (cc *clientConn) dispatch(m *message) error {
	if m.Type == msgSettings {
		if m.Version != Version {
			return fmt.Errorf("peer speaks version %d: %w", m.Version, ErrProtocol)
		}
		cc.mu.Lock()
		cc.maxReqs = int(min(m.MaxRequests, 1024))
		cc.mu.Unlock()
		if m.Features&featureBatch != 0 {
			cc.c.enable()
		}
		return nil
	}
	switch m.Type {
	case msgBlock, msgMore, msgMissing, msgEnd:
	default:
		return fmt.Errorf("%s from a server: %w", m.Type, ErrProtocol)
	}
	cc.mu.Lock()
	s := cc.streams[m.ID]
	if m.Type == msgEnd && s != nil {
		delete(cc.streams, m.ID)
	}
	cc.mu.Unlock()
	if s == nil {
		if m.ID >= cc.nextIDSnapshot() {
			return fmt.Errorf("%s for request %d never sent: %w", m.Type, m.ID, ErrProtocol)
		}
		return nil // a request we canceled: drop what was in flight
	}
	return s.deliver(m)
}

func (cc *clientConn) nextIDSnapshot() uint64 {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.nextID
}

// open sends a request and returns its stream. window is the initial
// credit in bytes.
func (cc *clientConn) open(ctx context.Context, req wireRequest, window int) (*stream, error) {
	s := &stream{cc: cc, window: window, credit: int64(window), notify: make(chan struct{}, 1)}
	cc.mu.Lock()
	if cc.closeErr != nil {
		err := cc.closeErr
		cc.mu.Unlock()
		return nil, fmt.Errorf("connection to %s: %w", cc.peer, err)
	}
	s.id = cc.nextID
	cc.nextID++
	cc.streams[s.id] = s
	cc.mu.Unlock()
	b := appendMessage(make([]byte, 0, 256), &message{Type: msgRequest, ID: s.id, Window: uint64(window), Req: req})
	if len(b) > MaxMessage {
		cc.forget(s.id)
		return nil, fmt.Errorf("request of %d bytes: %w", len(b), node.ErrTooLarge)
	}
	if err := cc.c.WriteMessage(ctx, b); err != nil {
		cc.forget(s.id)
		return nil, fmt.Errorf("sending request to %s: %w", cc.peer, err)
	}
	return s, nil
}

func (cc *clientConn) forget(id uint64) {
	cc.mu.Lock()
	delete(cc.streams, id)
	cc.mu.Unlock()
}

// inflight returns the number of open requests.
func (cc *clientConn) inflight() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.streams)
}

// item is one thing a stream delivers: a whole block, or a MISSING notice.
type item struct {
	blk     node.Block
	missing bool
}

// stream is one request's receive side.
type stream struct {
	cc     *clientConn
	id     uint64
	window int

	mu       sync.Mutex
	ready    []item
	head     int      // ready[head:] are undelivered
	cur      *item    // the block being reassembled
	curSize  int      // its announced size
	credit   int64    // bytes the server may still send
	owed     int      // bytes consumed and not yet credited back
	end      *message // END, once received
	err      error
	notify   chan struct{}
	ended    bool // next returned io.EOF or an error: the stream is finished
	canceled bool // cancel was called: drop what still arrives
}

// deliver handles a server message for this stream; it runs on the read
// loop and never blocks.
func (s *stream) deliver(m *message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.canceled {
		return nil // in flight before the server saw CANCEL; END removes the stream
	}
	switch m.Type {
	case msgBlock:
		if s.cur != nil {
			return fmt.Errorf("BLOCK before the previous block ended: %w", ErrProtocol)
		}
		s.credit -= int64(len(m.Data))
		if s.credit < 0 {
			return fmt.Errorf("data beyond credit: %w", ErrProtocol)
		}
		buf := make([]byte, 0, min(int64(m.Size), s.credit+int64(len(m.Data))))
		s.cur = &item{blk: node.Block{Cid: m.Cid, Data: append(buf, m.Data...)}}
		s.curSize = int(m.Size)
		s.cc.bytesIn.Add(int64(len(m.Data)))
	case msgMore:
		if s.cur == nil {
			return fmt.Errorf("MORE outside a block: %w", ErrProtocol)
		}
		s.credit -= int64(len(m.Data))
		if s.credit < 0 {
			return fmt.Errorf("data beyond credit: %w", ErrProtocol)
		}
		if len(s.cur.blk.Data)+len(m.Data) > s.curSize {
			return fmt.Errorf("fragments longer than their block: %w", ErrProtocol)
		}
		s.cur.blk.Data = append(s.cur.blk.Data, m.Data...)
		s.cc.bytesIn.Add(int64(len(m.Data)))
	case msgMissing:
		if s.cur != nil {
			return fmt.Errorf("MISSING inside a block: %w", ErrProtocol)
		}
		s.ready = append(s.ready, item{blk: node.Block{Cid: m.Cid}, missing: true})
		s.signal()
		return nil
	case msgEnd:
		if s.cur != nil && m.Code == codeOK {
			return fmt.Errorf("END inside a block: %w", ErrProtocol)
		}
		s.cur = nil
		mm := *m
		s.end = &mm
		s.signal()
		return nil
	}
	if len(s.cur.blk.Data) == s.curSize {
		s.ready = append(s.ready, *s.cur)
		s.cur = nil
		s.signal()
	}
	return nil
}

func (s *stream) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *stream) failWith(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.signal()
}

// next returns the stream's next item. At a successful END it returns
// io.EOF; at an error END, the error the code maps to. If nothing arrives
// for stall (when > 0), on this stream nor on the connection, it fails
// with ErrStalled: a peer whose connection delivers other requests' blocks
// is slow or busy (a loaded machine, a congested link), not stalled.
func (s *stream) next(ctx context.Context, stall time.Duration) (item, error) {
	var timer Timer
	var timeout <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if s.head < len(s.ready) {
			it := s.ready[s.head]
			s.ready[s.head] = item{}
			s.head++
			if s.head == len(s.ready) {
				s.ready, s.head = s.ready[:0], 0
			}
			s.owed += len(it.blk.Data)
			grant := 0
			if s.end == nil && s.owed >= max(s.window/4, 1) {
				grant, s.owed = s.owed, 0
				s.credit += int64(grant)
			}
			s.mu.Unlock()
			if grant > 0 {
				b := appendMessage(make([]byte, 0, 16), &message{Type: msgCredit, ID: s.id, Credit: uint64(grant)})
				if err := s.cc.c.WriteMessage(ctx, b); err != nil {
					return item{}, fmt.Errorf("granting credit to %s: %w", s.cc.peer, err)
				}
			}
			return it, nil
		}
		if s.end != nil {
			s.ended = true
			end := s.end
			s.mu.Unlock()
			if end.Code == codeOK {
				return item{}, io.EOF
			}
			return item{}, codeErr(end.Code, end.Text)
		}
		if s.err != nil {
			s.ended = true
			err := s.err
			s.mu.Unlock()
			return item{}, err
		}
		s.mu.Unlock()
		if stall > 0 && timer == nil {
			timer = s.cc.clk.NewTimer(stall)
			timeout = timer.C()
		}
		select {
		case <-s.notify:
			if timer != nil {
				timer.Stop()
				timer = nil
			}
		case <-ctx.Done():
			return item{}, ctx.Err()
		case <-timeout:
			// Wait on while the connection received anything within
			// stall; the wait is bounded by its silence.
			quiet := s.cc.clk.Now().Sub(time.Unix(0, s.cc.lastRecv.Load()))
			if quiet < stall {
				timer = s.cc.clk.NewTimer(stall - quiet)
				timeout = timer.C()
				continue
			}
			return item{}, fmt.Errorf("%s sent nothing for %v: %w", s.cc.peer, stall, ErrStalled)
		}
	}
}

// cancel abandons the request: the server is told to stop and anything
// still in flight for it is dropped. The request keeps its slot (inflight)
// until the server's END, so a requester that cancels and reopens never
// exceeds the server's limit. It is a no-op once the stream ended.
func (s *stream) cancel() {
	s.mu.Lock()
	finished := s.end != nil || s.err != nil || s.canceled
	s.ended, s.canceled = true, true
	s.ready, s.head, s.cur = nil, 0, nil
	s.mu.Unlock()
	if finished {
		return
	}
	// Best effort, bounded: a full send buffer must not hold up the caller.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	b := appendMessage(make([]byte, 0, 16), &message{Type: msgCancel, ID: s.id})
	if err := s.cc.c.WriteMessage(ctx, b); err != nil {
		s.cc.log.Debug("exchange: cancel not sent", "peer", s.cc.peer, "err", err)
		s.cc.forget(s.id)
	}
}

// requestBlocks is a convenience for a BLOCKS request.
func requestBlocks(cids []cid.Cid) wireRequest { return wireRequest{Blocks: cids} }
