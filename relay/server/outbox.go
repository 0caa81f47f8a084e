package relayserver

import (
	"sync"
	"time"
)

// outbox coalesces writes (Config.Coalesce > 0). A connection with output
// is listed once; the event loops write every listed connection's output at
// the end of each round of events, and a timer does it Coalesce after the
// first listing at the latest (for output queued outside the loops: pings,
// blocking mode). So a burst to one peer goes out in one write(2), and
// writes to many peers come back to back, which wakes the receiving side
// (on loopback: the receiving process) less often. The timer is armed only
// while something waits: an idle relay does not tick.
type outbox struct {
	delay time.Duration
	mu    sync.Mutex
	dirty []*conn
	spare []*conn
	armed bool
	timer *time.Timer
}

func newOutbox(delay time.Duration) *outbox {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &outbox{delay: delay, timer: t}
}

// add lists c; c.scheduled was false and is now true.
func (o *outbox) add(c *conn) {
	o.mu.Lock()
	o.dirty = append(o.dirty, c)
	if !o.armed {
		o.armed = true
		o.timer.Reset(o.delay)
	}
	o.mu.Unlock()
}

// run is the writer goroutine; it returns when stop is closed, after a last
// round.
func (o *outbox) run(stop <-chan struct{}) {
	for {
		select {
		case <-o.timer.C:
			o.round()
		case <-stop:
			o.timer.Stop()
			o.round()
			return
		}
	}
}

// round writes every listed connection's output. The event loops call it
// after each round of events and the timer when it fires; concurrent rounds
// take disjoint lists.
func (o *outbox) round() {
	o.mu.Lock()
	batch := o.dirty
	if len(batch) == 0 {
		o.mu.Unlock()
		return
	}
	o.dirty, o.spare = o.spare, nil
	if o.armed {
		// A loop got here first: the timer has nothing to do.
		o.timer.Stop()
		o.armed = false
	}
	o.mu.Unlock()
	for _, c := range batch {
		c.flush()
	}
	clear(batch)
	if cap(batch) <= 4096 {
		o.mu.Lock()
		if o.spare == nil {
			o.spare = batch[:0]
		}
		o.mu.Unlock()
	}
}
