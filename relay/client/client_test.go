package relayclient

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
)

func TestBackoff(t *testing.T) {
	minD, maxD := 100*time.Millisecond, 2*time.Second
	for attempt := range 40 {
		want := maxD
		if attempt < 5 {
			want = minD << attempt
		}
		for range 200 {
			d := backoff(attempt, minD, maxD)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
	// Jitter: draws differ.
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[backoff(3, minD, maxD)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct waits", len(seen))
	}
}

func TestConfigChecks(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, relay.ErrBadConfig) {
		t.Fatalf("no URL: %v", err)
	}
	if _, err := New(Config{URL: "ws://x", Key: make([]byte, 5)}); !errors.Is(err, relay.ErrBadConfig) {
		t.Fatalf("short key: %v", err)
	}
}

func TestAnnouncementChecks(t *testing.T) {
	roots := make([]cid.Cid, relay.MaxRootsPerSite+1)
	for _, a := range []Announcement{
		{Role: "king"},
		{Role: relay.RoleTab, Capacity: -1},
		{Role: relay.RoleSeeder, Sites: []SiteRoots{{Roots: roots}}},
	} {
		if _, err := a.message(); err == nil {
			t.Errorf("%+v accepted", a)
		}
	}
}

// TestUnreachableRelay: requests wait for a connection within their
// context; the client keeps retrying and Close stops it.
func TestUnreachableRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	states := make(chan State, 100)
	c, err := New(Config{URL: "ws://" + addr + "/ws", MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		OnState: func(s State) {
			select {
			case states <- s:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	// Several failed attempts, each followed by a wait.
	timeout := time.After(10 * time.Second)
	for n := 0; n < 3; {
		select {
		case s := <-states:
			if s == StateReady {
				t.Fatal("ready without a relay")
			}
			if s == StateDisconnected {
				n++
			}
		case <-timeout:
			t.Fatal("no reconnection attempts")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Find(ctx, node.SiteID{}, 1, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("find: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if c.State() != StateClosed {
		t.Fatalf("state %v", c.State())
	}
	if err := c.WaitReady(context.Background()); !errors.Is(err, relay.ErrClosed) {
		t.Fatalf("wait after close: %v", err)
	}
}

func TestSubscriptionKeepsNewest(t *testing.T) {
	s := &Subscription{ch: make(chan *node.RootRecord, 1)}
	for seq := uint64(1); seq <= 5; seq++ {
		s.offer(&node.RootRecord{Seq: seq})
	}
	if r := <-s.Records(); r.Seq != 5 {
		t.Fatalf("got seq %d", r.Seq)
	}
	s.close()
	s.offer(&node.RootRecord{Seq: 6}) // after close: dropped, no panic
	if _, ok := <-s.Records(); ok {
		t.Fatal("open after close")
	}
}

func TestRecordsVerifiedByClient(t *testing.T) {
	c, err := New(Config{URL: "ws://127.0.0.1:1/ws", MinBackoff: time.Hour, MaxBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, siteKey, _ := ed25519.GenerateKey(rand.Reader)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	site := node.SiteIDOf(siteKey.Public().(ed25519.PublicKey))
	sub := &Subscription{c: c, site: site, ch: make(chan *node.RootRecord, 1)}
	c.mu.Lock()
	c.subs[site] = &siteSubs{subs: []*Subscription{sub}}
	c.mu.Unlock()
	root, _ := cid.Decode("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
	rec := func(key ed25519.PrivateKey, seq uint64) *node.RootRecord {
		r, err := node.NewRootRecord(key, seq, root, time.UnixMilli(1))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	none := func(what string) {
		t.Helper()
		select {
		case r := <-sub.Records():
			t.Fatalf("%s delivered (seq %d)", what, r.Seq)
		default:
		}
	}
	forged := rec(siteKey, 5).Bytes()
	forged[len(forged)-1] ^= 1
	c.deliverRecord(site.String(), forged)
	none("a forged record")
	c.deliverRecord(site.String(), rec(otherKey, 6).Bytes())
	none("another site's record")
	c.deliverRecord(site.String(), rec(siteKey, 2).Bytes())
	if r := <-sub.Records(); r.Seq != 2 {
		t.Fatalf("seq %d", r.Seq)
	}
	c.deliverRecord(site.String(), rec(siteKey, 2).Bytes())
	c.deliverRecord(site.String(), rec(siteKey, 1).Bytes())
	none("a replayed or older record")
	c.deliverRecord(site.String(), rec(siteKey, 3).Bytes())
	if r := <-sub.Records(); r.Seq != 3 {
		t.Fatalf("seq %d", r.Seq)
	}
}
