package netlab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NS is a network namespace the lab created. It is held by an open file
// descriptor, not a name under /var/run/netns: when the process ends, the
// kernel frees it with its links, so a crashed test leaves nothing behind.
// Sockets created inside Do belong to the namespace for their whole life.
type NS struct {
	// Name names the namespace in logs and errors.
	Name string

	mu     sync.Mutex
	f      *os.File // /proc/thread-self/ns/net of the creating thread
	handle *netlink.Handle
}

// newNS unshares a fresh network namespace on a throwaway OS thread and
// keeps a descriptor to it. Loopback is brought up.
func newNS(name string) (*NS, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is never unlocked: it leaves the namespace it was
		// moved into by dying with this goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("unshare netns %s: %v: %w", name, err, ErrUnsupported)}
			return
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{err: fmt.Errorf("opening netns %s: %w", name, err)}
			return
		}
		ch <- result{f: f}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(int(r.f.Fd())))
	if err != nil {
		r.f.Close()
		return nil, fmt.Errorf("netlink handle in %s: %w", name, err)
	}
	n := &NS{Name: name, f: r.f, handle: h}
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("loopback up in %s: %w", name, err)
	}
	return n, nil
}

// fd is the namespace's descriptor, or -1 once closed.
func (n *NS) fd() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.f == nil {
		return -1
	}
	return int(n.f.Fd())
}

// Path is a path that names the namespace to other processes while the
// lab is open, for `nsenter --net=PATH` or setns(2).
func (n *NS) Path() string {
	return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(n.fd())
}

// Do runs f on an OS thread that has entered the namespace. Sockets that f
// opens stay in the namespace; goroutines that f starts do not run there.
// The thread is discarded afterwards, never returned to the scheduler.
func (n *NS) Do(f func() error) error {
	fd := n.fd()
	if fd < 0 {
		return fmt.Errorf("netns %s: %w", n.Name, ErrClosed)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering netns %s: %w", n.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// sysctl writes value to /proc/sys/<key> (key in slash form, such as
// "net/ipv4/ip_forward") inside the namespace.
func (n *NS) sysctl(key, value string) error {
	return n.Do(func() error {
		if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s in %s: %w", key, n.Name, err)
		}
		return nil
	})
}

// ListenUDP opens a UDP socket in the namespace (address as for
// net.ListenPacket, such as ":0").
func (n *NS) ListenUDP(address string) (*net.UDPConn, error) {
	var c net.PacketConn
	err := n.Do(func() (err error) {
		c, err = net.ListenPacket("udp4", address)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// Listen opens a TCP listener in the namespace.
func (n *NS) Listen(address string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() (err error) {
		l, err = net.Listen("tcp4", address)
		return err
	})
	return l, err
}

// DialContext dials from the namespace; it has the shape of
// net.Dialer.DialContext, for http.Transport and WebSocket clients.
func (n *NS) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Command returns a command that runs name inside the namespace (through
// nsenter(1)), for processes such as a browser.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.Path(), "--", name}, args...)...)
}

// Close releases the namespace. The kernel frees it, with its links, once
// no socket or process uses it.
func (n *NS) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.f == nil {
		return nil
	}
	n.handle.Close()
	err := n.f.Close()
	n.f = nil
	return err
}
