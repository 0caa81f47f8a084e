//go:build !js

package relayserver_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	relayserver "github.com/hearthcdn/hearth/relay/server"
)

// serverGoroutines returns the stacks of goroutines running relay server
// code, apart from the caller's.
func serverGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "hearth/relay/server.") && !strings.Contains(g, "relay/server_test.") {
			out = append(out, g)
		}
	}
	return out
}

func TestCloseWaitsForGoroutines(t *testing.T) { forModes(t, testCloseWaitsForGoroutines) }

func testCloseWaitsForGoroutines(t *testing.T) {
	r := startRelay(t, relayserver.Config{}, nil)
	a, b := healthyPair(t, r)
	for range 10 {
		helloRaw(t, r)
	}
	slow := dialWire(t, r) // a peer that will never read again
	slow.hello()
	roundTrip(t, a, b, "before-close")
	if len(serverGoroutines()) == 0 {
		t.Fatal("no server goroutines while serving")
	}
	r.stop()
	// Close returns once every goroutine has released the server (its
	// deferred cleanup ran); one may still be returning from that call, so
	// give the scheduler a bounded number of turns to let it exit.
	var gs []string
	for i := 0; i < 200; i++ {
		if gs = serverGoroutines(); len(gs) == 0 {
			return
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%d server goroutines after Close:\n%s", len(gs), strings.Join(gs, "\n\n"))
}
