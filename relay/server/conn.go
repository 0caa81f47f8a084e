package relayserver

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
)

// conn is one peer's connection, after the WebSocket handshake.
//
// It is driven in one of two ways. In loop mode (Linux, plain TCP) an event
// loop owns the socket's file descriptor: it reads when epoll says so and
// no goroutine exists for the connection. In blocking mode (TLS, other
// systems) a reader goroutine reads and, while the socket is backed up, a
// flusher goroutine writes. Either way, messages are handled inline by
// whoever reads (handle never blocks), and output goes through out, a
// buffer of ready frames guarded by wmu.
type conn struct {
	s  *Server
	ip netip.Addr

	// Transport: loop mode has fd and loop; blocking mode has nc.
	fd   int
	loop *loop
	nc   net.Conn

	// Read side: only the reading goroutine (the loop or the reader).
	in      *[]byte // unparsed input, pooled; nil when empty
	inLen   int
	inNeed  int // size of the incomplete frame at the head of in, when known
	parser  frameParser
	started int64 // mono
	nonce   [relay.NonceSize]byte
	tokens  float64
	tokLast int64 // mono
	strikes int
	key     node.SiteID // set at hello, then immutable
	keyText string
	cleaned bool
	// The connection's TURN credential (see ice), minted at the first ice
	// request.
	turnUser, turnPass string
	turnExpires        time.Time

	authed   atomic.Bool
	lastRead atomic.Int64 // mono time of the last read
	closing  atomic.Bool  // closeWith was called: the reader discards input
	killed   atomic.Bool  // kill was called: the reader cleans up
	reason   atomic.Pointer[string]

	// Guarded by s.reg.mu.
	role      relay.Role
	capacity  int
	anns      []*announcement
	intro     []node.SiteID
	introNext int

	// Guarded by s.records.mu.
	subs []node.SiteID

	// Output, guarded by wmu.
	wmu         sync.Mutex
	out         *[]byte // frames not written yet, pooled; nil when none
	outSince    int64   // mono time the socket last refused to take out; 0 while it takes it
	scheduled   bool    // listed in the outbox
	watching    bool    // loop mode: waiting for the socket to be writable
	flusher     bool    // blocking mode: a flusher goroutine runs
	closeAfter  bool    // shut the write side once out is written
	finished    bool    // the write side is shut
	lingerUntil int64   // mono: after finishing, when to stop waiting for the peer's EOF
	dead        bool    // killed or cleaned up: no more output
	fdClosed    bool    // loop mode: fd is closed; no system calls on it
}

// lingerTime bounds how long a connection that the relay is closing
// gracefully (last messages, close frame, FIN) waits for the peer to close
// its side before the relay cuts it.
const lingerTime = 2e9 // ns

// Pools. Input chunks are taken when data arrives and returned once it is
// parsed, so an idle connection holds no buffer; output buffers likewise.
const chunkSize = 4 << 10

var (
	chunks  = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}
	outBufs = sync.Pool{New: func() any { b := make([]byte, 0, chunkSize); return &b }}
)

func newConn(s *Server, ip netip.Addr) *conn {
	now := s.mono()
	c := &conn{s: s, ip: ip, fd: -1, started: now, tokLast: now, tokens: float64(s.cfg.MessageBurst)}
	c.parser.max = s.cfg.MaxMessageSize
	c.lastRead.Store(now)
	return c
}

// start sends the challenge and parses what the client sent before it;
// the reading goroutine calls it first.
func (c *conn) start(pending []byte) bool {
	if _, err := rand.Read(c.nonce[:]); err != nil {
		c.s.log.Error("reading random nonce", "err", err)
		c.kill(reasonClosed)
		return false
	}
	c.sendMsg(&relay.Message{Type: relay.TypeChallenge, Nonce: c.nonce[:]})
	if len(pending) > 0 {
		c.in = getChunk(len(pending))
		c.inLen = copy(*c.in, pending)
		c.consume()
		if c.inLen == 0 {
			putChunk(c.in)
			c.in = nil
		}
	}
	return true
}

func getChunk(min int) *[]byte {
	if min <= chunkSize {
		return chunks.Get().(*[]byte)
	}
	b := make([]byte, min)
	return &b
}

func putChunk(b *[]byte) {
	if cap(*b) == chunkSize {
		*b = (*b)[:chunkSize]
		chunks.Put(b)
	}
}

// space returns the free part of the input buffer, making room for need
// bytes of frame in all when the current frame is bigger than the buffer.
func (c *conn) space(need int) []byte {
	if c.in == nil {
		c.in = getChunk(need)
	}
	if need > len(*c.in) {
		b := make([]byte, need)
		copy(b, (*c.in)[:c.inLen])
		putChunk(c.in)
		c.in = &b
	}
	return (*c.in)[c.inLen:]
}

// need is the size of the incomplete frame at the head of the input, or 0.
func (c *conn) need() int { return c.inNeed }

// received accounts for n bytes read into space() and parses them. It
// reports false when the connection should end now.
func (c *conn) received(n int) bool {
	c.inLen += n
	c.lastRead.Store(c.s.mono())
	if c.killed.Load() {
		return false
	}
	if c.closing.Load() { // closing: drop input until the peer's EOF
		c.inLen, c.inNeed = 0, 0
	} else {
		c.consume()
	}
	if c.inLen == 0 && c.in != nil {
		putChunk(c.in)
		c.in = nil
	}
	return !c.killed.Load()
}

// consume parses and handles every whole frame in the input.
func (c *conn) consume() {
	buf := (*c.in)[:c.inLen]
	off := 0
	c.inNeed = 0
	for off < len(buf) && !c.closing.Load() {
		used, need, ev, err := c.parser.next(buf[off:])
		if err != nil {
			code, reason := closeProtocolError, reasonProtocol
			if errors.Is(err, errTooBig) {
				code, reason = closeTooBig, reasonTooBig
			}
			c.closeWith(0, "", nil, reason, code)
			off = len(buf)
			break
		}
		if used == 0 {
			c.inNeed = need
			break
		}
		off += used
		switch ev.kind {
		case evMessage:
			if ev.op != opText {
				if !c.authed.Load() {
					c.closeWith(0, "", errBinary, reasonBadHello, closePolicy)
				} else {
					c.refuse(0, "", errBinary, true)
				}
				continue
			}
			c.handle(ev.payload)
		case evPing:
			c.enqueue(opPong, ev.payload)
		case evClose: // answer with the same code, or 1002 for one that may not be sent
			code := closeCode(ev.payload)
			if !validCloseCode(code) {
				code = closeProtocolError
			}
			c.closeWith(0, "", nil, reasonClosed, code)
		}
	}
	if c.closing.Load() {
		off = len(buf)
	}
	c.inLen = copy(buf, buf[off:])
}

var errBinary = fmt.Errorf("binary frame: %w", relay.ErrBadMessage)

// cleanup ends the connection; only the reading goroutine calls it.
func (c *conn) cleanup() {
	if c.cleaned {
		return
	}
	c.cleaned = true
	if c.loop != nil {
		c.loop.remove(c)
	}
	c.wmu.Lock()
	c.dead = true
	if c.out != nil {
		putOut(c.out)
		c.out = nil
	}
	if c.loop != nil && !c.fdClosed {
		c.fdClosed = true
		closeFD(c.fd)
	}
	c.wmu.Unlock()
	if c.nc != nil {
		_ = c.nc.Close()
	}
	if c.in != nil {
		putChunk(c.in)
		c.in = nil
	}
	if c.authed.Load() {
		c.s.reg.remove(c)
		c.s.records.unsubscribeAll(c)
	}
	reason := reasonClosed
	if p := c.reason.Load(); p != nil {
		reason = *p
	}
	c.s.metrics.disconnects.WithLabelValues(reason).Inc()
	c.s.log.Debug("peer disconnected", "peer", c.keyText, "ip", c.ip, "reason", reason)
	c.s.forget(c)
}

func (c *conn) setReason(r string) { c.reason.CompareAndSwap(nil, &r) }

func putOut(b *[]byte) {
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		outBufs.Put(b)
	}
}

// send delivers msg, one text message, to the peer; it never blocks. See
// enqueue.
func (c *conn) send(msg []byte) { c.enqueue(opText, msg) }

func (c *conn) sendMsg(m *relay.Message) {
	b, err := relay.Encode(m)
	if err != nil {
		c.s.log.Error("encoding message", "type", m.Type, "err", err)
		return
	}
	c.send(b)
}

func (c *conn) sendError(id uint64, peer string, err error) {
	code := relay.CodeOf(err)
	c.s.metrics.errors.WithLabelValues(string(code)).Inc()
	c.sendMsg(&relay.Message{Type: relay.TypeError, ID: id, Peer: peer, Code: code, Reason: err.Error()})
}

// enqueue adds a frame to the output and gets it written: at once, with a
// non-blocking write, when Config.Coalesce is 0; otherwise through the
// outbox, which coalesces writes (see outbox.go). It never blocks. When the
// output already holds SendQueue bytes the peer is too slow to read and is
// disconnected.
func (c *conn) enqueue(op byte, p []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead || c.closeAfter || c.finished {
		return
	}
	if c.out == nil {
		c.out = outBufs.Get().(*[]byte)
	}
	if len(*c.out)+len(p) > c.s.cfg.SendQueue {
		c.killLocked(reasonSlow)
		return
	}
	*c.out = appendFrame(*c.out, op, p)
	c.kickLocked()
}

// kickLocked gets out written: now or via the outbox.
func (c *conn) kickLocked() {
	if c.s.outbox == nil {
		c.flushLocked()
		return
	}
	if !c.scheduled && !c.watching && !c.flusher {
		c.scheduled = true
		c.s.outbox.add(c)
	}
}

// flush is the outbox's turn at c.
func (c *conn) flush() {
	c.wmu.Lock()
	c.scheduled = false
	c.flushLocked()
	c.wmu.Unlock()
}

// flushLocked writes out without blocking. In loop mode it writes what the
// socket takes and, for the rest, waits for the loop to report the socket
// writable; in blocking mode it starts a flusher goroutine.
func (c *conn) flushLocked() {
	if c.dead {
		return
	}
	if c.out == nil || len(*c.out) == 0 {
		if c.closeAfter && !c.finished {
			c.finishLocked()
		}
		return
	}
	if c.loop == nil {
		if !c.flusher {
			// Counted under wmu while not dead: the reader, which marks
			// the connection dead before it ends, still runs, so the
			// WaitGroup is above zero.
			c.flusher = true
			c.s.wg.Add(1)
			go c.blockingFlush()
		}
		return
	}
	if c.watching {
		return // the loop writes when the socket is writable
	}
	n, err := writeFD(c.fd, *c.out)
	if err != nil {
		c.killLocked(reasonClosed)
		return
	}
	if n < len(*c.out) {
		*c.out = (*c.out)[:copy(*c.out, (*c.out)[n:])]
		if c.outSince == 0 {
			c.outSince = c.s.mono()
		}
		c.watching = true
		if err := c.loop.watchWrite(c, true); err != nil {
			c.killLocked(reasonClosed)
		}
		return
	}
	putOut(c.out)
	c.out, c.outSince = nil, 0
	if c.closeAfter && !c.finished {
		c.finishLocked()
	}
}

// writable is the loop's report that a backed-up socket takes data again.
func (c *conn) writable() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.watching || c.dead {
		return
	}
	c.watching = false
	if err := c.loop.watchWrite(c, false); err != nil {
		c.killLocked(reasonClosed)
		return
	}
	c.outSince = 0
	c.flushLocked()
}

// blockingFlush writes out in blocking mode, each write bounded by
// WriteTimeout, until out stays empty.
func (c *conn) blockingFlush() {
	defer c.s.wg.Done()
	for {
		c.wmu.Lock()
		b := c.out
		if c.dead || b == nil || len(*b) == 0 {
			c.flusher = false
			if !c.dead && c.closeAfter && !c.finished {
				c.finishLocked()
			}
			c.wmu.Unlock()
			return
		}
		c.out = nil
		c.outSince = c.s.mono()
		c.wmu.Unlock()
		err := c.nc.SetWriteDeadline(c.s.cfg.Now().Add(c.s.cfg.WriteTimeout))
		if err == nil {
			_, err = c.nc.Write(*b)
		}
		putOut(b)
		if err != nil {
			c.wmu.Lock()
			c.flusher = false
			c.killLocked(reasonSlow)
			c.wmu.Unlock()
			return
		}
	}
}

// finishLocked shuts the write side: the peer reads what was sent, then
// EOF. The reader drops input until the peer closes too, or until
// lingerTime passes (the sweeper then kills the connection).
func (c *conn) finishLocked() {
	c.finished = true
	c.lingerUntil = c.s.mono() + lingerTime
	if c.loop != nil {
		if !c.fdClosed {
			shutdownWrite(c.fd)
		}
		return
	}
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	c.killLocked("")
}

// kill cuts the connection at once; the reader notices and cleans up.
// reason "" keeps an earlier reason.
func (c *conn) kill(reason string) {
	c.wmu.Lock()
	c.killLocked(reason)
	c.wmu.Unlock()
}

func (c *conn) killLocked(reason string) {
	if c.dead {
		return // already ending, for its own reason
	}
	if reason != "" {
		c.setReason(reason)
	}
	c.dead = true
	c.killed.Store(true)
	if c.out != nil {
		putOut(c.out)
		c.out = nil
	}
	if c.loop != nil {
		if !c.fdClosed {
			shutdownBoth(c.fd) // the loop sees EOF and cleans up
		}
		return
	}
	_ = c.nc.Close() // the reader's Read fails and it cleans up
}

// closeWith closes the connection gracefully: an error message (when err
// is set; id and peer as in refuse), a close frame with code, then, once
// written, the write side shuts. Any goroutine may call it.
func (c *conn) closeWith(id uint64, peer string, err error, reason string, code int) {
	c.setReason(reason)
	if err != nil {
		c.sendError(id, peer, err)
	}
	c.closing.Store(true)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead || c.closeAfter || c.finished {
		return
	}
	if c.out == nil {
		c.out = outBufs.Get().(*[]byte)
	}
	text := ""
	if err != nil {
		text = string(relay.CodeOf(err))
	}
	*c.out = appendClose(*c.out, code, text)
	c.closeAfter = true
	c.kickLocked()
}

// checkTimers is the sweeper's look at c: hello deadline, idle deadline,
// ping, write stall and linger.
func (c *conn) checkTimers(now int64) {
	if !c.authed.Load() && now-c.started > int64(c.s.cfg.HelloTimeout) {
		c.kill(reasonHello)
		return
	}
	c.wmu.Lock()
	stalled := c.outSince != 0 && now-c.outSince > int64(c.s.cfg.WriteTimeout)
	lingered := c.finished && now > c.lingerUntil
	c.wmu.Unlock()
	switch {
	case stalled:
		c.kill(reasonSlow)
		return
	case lingered:
		c.kill("")
		return
	}
	idle := now - c.lastRead.Load()
	switch {
	case idle > int64(c.s.cfg.IdleTimeout):
		c.kill(reasonIdle)
	case idle > int64(c.s.cfg.IdleTimeout/3):
		// Any answer counts as life: a pong, or anything else. Pinging at
		// a third leaves two thirds of the timeout for the answer.
		c.enqueue(opPing, nil)
	}
}

// allow takes a token from the peer's bucket.
func (c *conn) allow() bool {
	now := c.s.mono()
	c.tokens += float64(now-c.tokLast) * c.s.cfg.MessageRate / 1e9
	c.tokLast = now
	if burst := float64(c.s.cfg.MessageBurst); c.tokens > burst {
		c.tokens = burst
	}
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}
