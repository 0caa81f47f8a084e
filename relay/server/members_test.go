package relayserver_test

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
	relayclient "github.com/hearthcdn/hearth/relay/client"
	relayserver "github.com/hearthcdn/hearth/relay/server"
)

func signMembers(t *testing.T, key ed25519.PrivateKey, seq uint64, policy node.Policy, ids ...node.SiteID) *node.MemberList {
	t.Helper()
	ms := make([]node.Member, len(ids))
	for i, id := range ids {
		ms[i] = node.Member{Node: node.NodeID(id)}
	}
	l, err := node.NewMemberList(key, seq, policy, ms, time.UnixMilli(1_700_000_000_000))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func peerIDs(ps []relayclient.Peer) []node.SiteID {
	out := make([]node.SiteID, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func TestFindFollowsMembers(t *testing.T) { forModes(t, testFindFollowsMembers) }

func testFindFollowsMembers(t *testing.T) {
	r := startRelay(t, relayserver.Config{}, nil)
	ctx := ctxT(t)
	siteKey := newKey(t)
	site := siteOf(siteKey)
	// Three seeders announce in order: outsider first, so that without a
	// list it would be handed out before the members.
	var seeders []*relayclient.Client
	for range 3 {
		c := newClient(t, r, nil)
		if err := c.Announce(ctx, relayclient.Announcement{Role: relay.RoleSeeder, Capacity: 10,
			Sites: []relayclient.SiteRoots{{Site: site}}}); err != nil {
			t.Fatal(err)
		}
		seeders = append(seeders, c)
	}
	outsider, alice, bob := seeders[0], seeders[1], seeders[2]
	origin := newClient(t, r, nil)
	asker := newClient(t, r, nil)
	find := func() []node.SiteID {
		t.Helper()
		ps, err := asker.Find(ctx, site, 5, nil)
		if err != nil {
			t.Fatal(err)
		}
		return peerIDs(ps)
	}
	if got := find(); len(got) != 3 {
		t.Fatalf("no list: %d peers", len(got))
	}

	// Members first: alice and bob, in either order, then the outsider.
	if err := origin.PublishMembers(ctx, signMembers(t, siteKey, 1, node.MembersFirst, alice.ID(), bob.ID())); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		got := find()
		if len(got) != 3 || got[2] != outsider.ID() || got[0] == outsider.ID() || got[1] == outsider.ID() {
			t.Fatalf("members first: %v (outsider %v)", got, outsider.ID())
		}
	}

	// Members only: the outsider is never handed out.
	if err := origin.PublishMembers(ctx, signMembers(t, siteKey, 2, node.MembersOnly, alice.ID(), bob.ID())); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		got := find()
		if len(got) != 2 || got[0] == outsider.ID() || got[1] == outsider.ID() {
			t.Fatalf("members only: %v", got)
		}
	}

	// Bob removed: from the next find on, only alice.
	if err := origin.PublishMembers(ctx, signMembers(t, siteKey, 3, node.MembersOnly, alice.ID())); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := find(); len(got) != 1 || got[0] != alice.ID() {
			t.Fatalf("after removal: %v", got)
		}
	}

	// Refusals: an older list, another site's key, a forged one; none
	// changes what find hands out.
	if err := origin.PublishMembers(ctx, signMembers(t, siteKey, 2, node.MembersOnly, alice.ID(), bob.ID())); !errors.Is(err, relay.ErrStaleRecord) {
		t.Fatalf("older list: %v", err)
	}
	forged := signMembers(t, newKey(t), 9, node.MembersFirst, bob.ID())
	raw := forged.Bytes()
	copy(raw[1:33], site[:])
	forgedMsg := &relay.Message{Type: relay.TypePublish, Members: raw}
	p := helloRaw(t, r)
	p.send(forgedMsg)
	p.expectError(relay.CodeBadRecord)
	if got := find(); len(got) != 1 || got[0] != alice.ID() {
		t.Fatalf("after refusals: %v", got)
	}

	// A subscriber gets the list held at once, and newer ones as published.
	sub, err := asker.Subscribe(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-sub.MemberLists():
		if l.Seq != 3 || !l.Has(node.NodeID(alice.ID())) || l.Has(node.NodeID(bob.ID())) {
			t.Fatalf("subscriber got %+v", l)
		}
	case <-time.After(testTimeout):
		t.Fatal("no member list")
	}
	if err := origin.PublishMembers(ctx, signMembers(t, siteKey, 4, node.MembersFirst)); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-sub.MemberLists():
		if l.Seq != 4 || len(l.Members) != 0 {
			t.Fatalf("subscriber got %+v", l)
		}
	case <-time.After(testTimeout):
		t.Fatal("no newer member list")
	}
}
