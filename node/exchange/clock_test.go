package exchange

import (
	"context"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when advance is called.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

type fakeTimer struct {
	c     *fakeClock
	at    time.Time
	ch    chan time.Time
	fired bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.fired = true
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, o := range t.c.timers {
		if o == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// advance moves the clock by d and fires the timers due, in order, and
// returns them.
func (c *fakeClock) advance(d time.Duration) []*fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	var due []*fakeTimer
	for len(c.timers) > 0 && !c.timers[0].at.After(c.now) {
		t := c.timers[0]
		c.timers = c.timers[1:]
		t.fired = true
		t.ch <- c.now
		due = append(due, t)
	}
	return due
}

// pending returns how many timers are set.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// due returns how far from now each pending timer is due, sorted.
func (c *fakeClock) due() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ds []time.Duration
	for _, t := range c.timers {
		ds = append(ds, t.at.Sub(c.now))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}

// waitReceived waits until every timer of ts had its time received (or
// fails the test after a bounded number of scheduler yields).
func waitReceived(t testing.TB, ts []*fakeTimer) {
	t.Helper()
	for _, tm := range ts {
		for i := 0; len(tm.ch) > 0; i++ {
			if i > 1e6 {
				t.Fatal("a fired timer was never read")
			}
			runtime.Gosched()
		}
	}
}

// waitFor yields until cond holds, failing the test after a bounded number
// of tries; cond is a state to reach, never a duration.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for i := 0; !cond(); i++ {
		if i > 20000 {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWithTimeout: a context from withTimeout ends exactly when the clock
// passes its deadline, with context.DeadlineExceeded as its cause.
func TestWithTimeout(t *testing.T) {
	clk := newFakeClock()
	ctx, cancel := withTimeout(t.Context(), clk, time.Second)
	defer cancel()
	clk.advance(999 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatal("ended before its deadline")
	}
	clk.advance(time.Millisecond)
	<-ctx.Done()
	if c := context.Cause(ctx); c != context.DeadlineExceeded {
		t.Fatalf("cause %v", c)
	}
	ctx2, cancel2 := withTimeout(t.Context(), clk, time.Second)
	cancel2()
	<-ctx2.Done()
	waitFor(t, "the canceled context's timer stopped", func() bool { return clk.pending() == 0 })
}
