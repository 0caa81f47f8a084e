//go:build linux

package relayserver

import (
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// loop is an epoll event loop that owns the sockets of many connections.
// A connection costs it no goroutine and, while idle, no buffer: the loop
// reads when epoll reports data, parses whole frames, handles messages
// inline, and at the end of each round of events writes what the round
// produced (the outbox), so that writes to many peers come back to back.
// Under load it then waits Config.Coalesce before the next round.
//
// Epoll is level-triggered: one read(2) per readiness report, no read that
// only returns EAGAIN. The loop's sockets are duplicates of the descriptors
// net/http accepted, taken out of Go's own poller (the original is closed),
// so each event wakes exactly one waiter.
//
// The loop does not block in epoll_wait: that would hold an OS thread in a
// system call, which Go's scheduler answers by handing the thread's P
// around and polling faster (sysmon), at a cost per round. Instead the epoll
// descriptor itself sits in Go's poller: the loop goroutine parks like any
// other until it is readable, then drains it with epoll_wait(0).
type loop struct {
	s    *Server
	epfd int
	ep   syscall.RawConn // epfd in Go's poller
	epf  *os.File
	wake int // eventfd: new connections and stop

	mu     sync.Mutex // guards adds and stop
	adds   []loopAdd
	stop   bool
	conns  map[int32]*conn // only the loop goroutine
	events [256]syscall.EpollEvent
	n      int                // events ready, set by poll
	perr   error              // poll's error
	waitFn func(uintptr) bool // l.poll, allocated once
}

// poll is the RawConn callback: it takes ready events without waiting and
// returns false (park until epfd is readable) when there are none.
func (l *loop) poll(fd uintptr) bool {
	for {
		n, err := syscall.EpollWait(int(fd), l.events[:], 0)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			l.perr = err
			return true
		case n == 0:
			return false
		}
		l.n = n
		return true
	}
}

type loopAdd struct {
	c       *conn
	pending []byte
}

const loopsSupported = true

func newLoop(s *Server) (*loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating epoll: %w", err)
	}
	r, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("creating eventfd: %w", errno)
	}
	l := &loop{s: s, epfd: epfd, wake: int(r), conns: make(map[int32]*conn)}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(l.wake)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, l.wake, &ev); err != nil {
		_ = syscall.Close(epfd)
		_ = syscall.Close(l.wake)
		return nil, fmt.Errorf("watching eventfd: %w", err)
	}
	// A non-blocking descriptor makes os.NewFile put it in Go's poller.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		_ = syscall.Close(epfd)
		_ = syscall.Close(l.wake)
		return nil, fmt.Errorf("epoll descriptor: %w", err)
	}
	l.epf = os.NewFile(uintptr(epfd), "relay-epoll")
	if l.ep, err = l.epf.SyscallConn(); err != nil {
		_ = l.epf.Close()
		_ = syscall.Close(l.wake)
		return nil, fmt.Errorf("epoll descriptor: %w", err)
	}
	l.waitFn = l.poll
	return l, nil
}

// detach takes the socket of nc (a *net.TCPConn) out of Go's hands: it
// returns a duplicate descriptor (non-blocking, as Go set the shared file
// status) and closes the original, which removes it from Go's poller.
func detach(nc net.Conn) (int, bool) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return -1, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		fd, derr = dupCloexec(int(s))
	}); err != nil || derr != nil {
		return -1, false
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return -1, false
	}
	_ = tc.Close()
	return fd, true
}

func dupCloexec(fd int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// add hands c (whose fd is set) to the loop, which starts it there.
func (l *loop) add(c *conn, pending []byte) {
	l.mu.Lock()
	l.adds = append(l.adds, loopAdd{c, pending})
	l.mu.Unlock()
	l.poke()
}

func (l *loop) poke() {
	one := uint64(1)
	_, _ = syscall.Write(l.wake, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// shutdown makes run return once it has seen the request.
func (l *loop) shutdown() {
	l.mu.Lock()
	l.stop = true
	l.mu.Unlock()
	l.poke()
}

// run is the loop goroutine.
func (l *loop) run() {
	defer func() {
		_ = l.epf.Close()
		_ = syscall.Close(l.wake)
	}()
	for {
		l.n, l.perr = 0, nil
		if err := l.ep.Read(l.waitFn); err != nil || l.perr != nil {
			if err == nil {
				err = l.perr
			}
			l.s.log.Error("epoll wait failed", "err", err)
			l.killAll()
			return
		}
		for i := range l.n {
			ev := &l.events[i]
			if int(ev.Fd) == l.wake {
				if l.wakeUp() {
					l.killAll()
					return
				}
				continue
			}
			c := l.conns[ev.Fd]
			if c == nil {
				continue
			}
			if ev.Events&syscall.EPOLLOUT != 0 {
				c.writable()
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR|syscall.EPOLLRDHUP) != 0 {
				l.readable(c)
			}
		}
		if l.s.outbox != nil {
			l.s.outbox.round()
		}
		if l.n > 0 && l.s.cfg.Coalesce > 0 {
			// Busy: let events gather for one Coalesce rather than wake
			// for each (see Config.Coalesce). Waking costs a context
			// switch, which on a virtual machine costs more than a
			// message's worth of work.
			time.Sleep(l.s.cfg.Coalesce)
		}
	}
}

// wakeUp drains the eventfd, starts added connections and reports whether
// the loop should stop.
func (l *loop) wakeUp() bool {
	var b [8]byte
	_, _ = syscall.Read(l.wake, b[:])
	l.mu.Lock()
	adds, stop := l.adds, l.stop
	l.adds = nil
	l.mu.Unlock()
	for _, a := range adds {
		c := a.c
		l.conns[int32(c.fd)] = c
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.fd)}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
			l.s.log.Error("epoll_ctl add failed", "err", err)
			c.kill(reasonClosed)
			c.cleanup()
			continue
		}
		if !c.start(a.pending) || c.killed.Load() {
			c.cleanup()
		}
	}
	return stop
}

// readable reads once from c and handles what arrived.
func (l *loop) readable(c *conn) {
	for {
		buf := c.space(c.need())
		n, err := rawIO(syscall.SYS_READ, c.fd, buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if c.inLen == 0 && c.in != nil {
				putChunk(c.in)
				c.in = nil
			}
			return
		case err != 0 || n == 0:
			c.setReason(reasonClosed)
			c.cleanup()
			return
		}
		if !c.received(n) {
			c.cleanup()
		}
		return
	}
}

// remove forgets c; called by c.cleanup on the loop goroutine.
func (l *loop) remove(c *conn) {
	if l.conns[int32(c.fd)] == c {
		delete(l.conns, int32(c.fd))
		_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	}
}

// watchWrite asks (or stops asking) epoll to report c writable. Called
// with c.wmu held, from any goroutine.
func (l *loop) watchWrite(c *conn, on bool) error {
	events := uint32(syscall.EPOLLIN | syscall.EPOLLRDHUP)
	if on {
		events |= syscall.EPOLLOUT
	}
	ev := syscall.EpollEvent{Events: events, Fd: int32(c.fd)}
	return syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev)
}

// killAll ends every connection the loop still holds (at shutdown).
func (l *loop) killAll() {
	l.mu.Lock()
	adds := l.adds
	l.adds = nil
	l.mu.Unlock()
	for _, a := range adds {
		a.c.kill(reasonShutdown)
		a.c.cleanup()
	}
	for _, c := range l.conns {
		c.kill(reasonShutdown)
		c.cleanup()
	}
}

// writeFD writes what the socket takes without blocking.
func writeFD(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := rawIO(syscall.SYS_WRITE, fd, b[n:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return n, nil
		case err != 0:
			return n, err
		}
		n += m
	}
	return n, nil
}

// rawIO is read(2) or write(2) on a non-blocking descriptor. It never
// blocks, so it skips the scheduler's system-call bookkeeping
// (syscall.Read would enter and leave a blocking-syscall state around it).
func rawIO(trap uintptr, fd int, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	r, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

func shutdownWrite(fd int) { _ = syscall.Shutdown(fd, syscall.SHUT_WR) }
func shutdownBoth(fd int)  { _ = syscall.Shutdown(fd, syscall.SHUT_RDWR) }
func closeFD(fd int)       { _ = syscall.Close(fd) }
