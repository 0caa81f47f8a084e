package netlab

import (
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// delayLine is the lab's latency: the kernel here has no netem, so the
// internet namespace routes every packet it forwards into a TUN device
// (policy routing: packets not arriving from the TUN look up a table whose
// only route is the TUN), and this loop reads each one, holds it for the
// one-way delays of the link it came in on plus the link it leaves by, and
// writes it back into the TUN, where the main table routes it on.
// Packets of one flow keep their order (one FIFO per delay value).
type delayLine struct {
	f *os.File

	mu     sync.Mutex
	oneway map[netip.Prefix]time.Duration // per public link subnet
	queues map[time.Duration]chan delayed
	closed bool

	wg sync.WaitGroup // the reader and one writer per queue
}

type delayed struct {
	at  time.Time
	pkt []byte
}

// Per-delay queue capacity, in packets: a full queue drops, as a router's
// does. 8192 packets hold 100 ms of 1 Gbit/s.
const delayQueueLen = 8192

// delayTUN is the name of the delay line's device in the internet namespace.
const delayTUN = "delay0"

// newDelayLine creates the TUN device in ns and starts its loop.
func newDelayLine(ns *NS) (*delayLine, error) {
	var fd int
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening /dev/net/tun: %v: %w", err, ErrUnsupported)
		}
		ifr, err := unix.NewIfreq(delayTUN)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF: %v: %w", err, ErrUnsupported)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil { // so Close interrupts Read
		unix.Close(fd)
		return nil, err
	}
	d := &delayLine{
		f:      os.NewFile(uintptr(fd), delayTUN),
		oneway: make(map[netip.Prefix]time.Duration),
		queues: make(map[time.Duration]chan delayed),
	}
	d.wg.Add(1)
	go func() { // owned by d: close waits
		defer d.wg.Done()
		d.read()
	}()
	return d, nil
}

// setDelay sets the one-way delay of packets to and from subnet p.
func (d *delayLine) setDelay(p netip.Prefix, oneway time.Duration) {
	d.mu.Lock()
	d.oneway[p] = oneway
	d.mu.Unlock()
}

// delayOf is the one-way delay of the link that holds a, or 0.
func (d *delayLine) delayOf(a netip.Addr) time.Duration {
	for p, t := range d.oneway {
		if p.Contains(a) {
			return t
		}
	}
	return 0
}

func (d *delayLine) read() {
	defer func() {
		d.mu.Lock()
		d.closed = true
		for _, q := range d.queues {
			close(q)
		}
		d.mu.Unlock()
	}()
	buf := make([]byte, 1<<16)
	for {
		n, err := d.f.Read(buf)
		if err != nil {
			return // closed
		}
		if n < 20 || buf[0]>>4 != 4 {
			continue // IPv4 only
		}
		src := netip.AddrFrom4([4]byte(buf[12:16]))
		dst := netip.AddrFrom4([4]byte(buf[16:20]))
		d.mu.Lock()
		delay := d.delayOf(src) + d.delayOf(dst)
		if delay == 0 {
			d.mu.Unlock()
			_, _ = d.f.Write(buf[:n])
			continue
		}
		q := d.queues[delay]
		if q == nil {
			q = make(chan delayed, delayQueueLen)
			d.queues[delay] = q
			d.wg.Add(1)
			go func() { // owned by d
				defer d.wg.Done()
				d.write(q)
			}()
		}
		d.mu.Unlock()
		p := delayed{at: time.Now().Add(delay), pkt: append([]byte(nil), buf[:n]...)}
		select {
		case q <- p:
		default: // queue full: dropped
		}
	}
}

// write releases one queue's packets in order, each at its time.
func (d *delayLine) write(q chan delayed) {
	for p := range q {
		if w := time.Until(p.at); w > 0 {
			time.Sleep(w)
		}
		_, _ = d.f.Write(p.pkt)
	}
}

// close stops the loop and waits for it.
func (d *delayLine) close() error {
	err := d.f.Close()
	d.wg.Wait()
	return err
}
