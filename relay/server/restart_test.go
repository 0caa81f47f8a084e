package relayserver_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/relay"
	relayclient "github.com/hearthcdn/hearth/relay/client"
	relayserver "github.com/hearthcdn/hearth/relay/server"
)

// waitState reads states until want, bounded by count and time.
func waitState(t *testing.T, states <-chan relayclient.State, want relayclient.State) {
	t.Helper()
	timeout := time.After(testTimeout)
	for range 1000 {
		select {
		case s := <-states:
			if s == want {
				return
			}
		case <-timeout:
			t.Fatalf("state %v not reached", want)
		}
	}
	t.Fatalf("state %v not reached", want)
}

func TestRelayRestart(t *testing.T) { forModes(t, testRelayRestart) }

func testRelayRestart(t *testing.T) {
	r1 := startRelay(t, relayserver.Config{}, nil)
	addr := r1.ln.Addr().String()

	states := make(chan relayclient.State, 1000)
	seeder := newClient(t, r1, func(c *relayclient.Config) {
		c.OnState = func(s relayclient.State) {
			select {
			case states <- s:
			default:
			}
		}
	})
	ctx := ctxT(t)
	site := siteOf(newKey(t))
	if err := seeder.Announce(ctx, relayclient.Announcement{Role: relay.RoleSeeder, Capacity: 4,
		Sites: []relayclient.SiteRoots{{Site: site}}}); err != nil {
		t.Fatal(err)
	}
	recordKey := newKey(t)
	sub, err := seeder.Subscribe(ctx, siteOf(recordKey))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, states, relayclient.StateReady)

	r1.stop()
	waitState(t, states, relayclient.StateDisconnected)
	// While the relay is down, requests wait for it (here: give up).
	short, cancel := contextWithTimeout(50 * time.Millisecond)
	_, err = seeder.Find(short, site, 1, nil)
	cancel()
	if err == nil {
		t.Fatal("find without a relay succeeded")
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r2 := startRelay(t, relayserver.Config{}, ln)
	waitState(t, states, relayclient.StateReady)

	// The seeder re-announced: a newcomer finds it on the new relay.
	tab := newClient(t, r2, nil)
	peers, err := tab.Find(ctx, site, 3, nil)
	if err != nil || len(peers) != 1 || peers[0].ID != seeder.ID() {
		t.Fatalf("find after restart: %v %+v", err, peers)
	}
	roundTrip(t, tab, seeder, "after-restart")
	// And re-subscribed: a record published on the new relay reaches it.
	if err := tab.PublishRecord(ctx, signRecord(t, recordKey, 1, "r1")); err != nil {
		t.Fatal(err)
	}
	if got := nextRecord(t, sub); got.Seq != 1 {
		t.Fatalf("record seq %d", got.Seq)
	}

	// Close ends the client for good: requests fail with ErrClosed.
	if err := seeder.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := seeder.Find(ctx, site, 1, nil); !errors.Is(err, relay.ErrClosed) {
		t.Fatalf("find after close: %v", err)
	}
	if _, ok := <-seeder.Signals(); ok {
		t.Fatal("signals open after Close")
	}
	if _, ok := <-sub.Records(); ok {
		t.Fatal("records open after Close")
	}
}
