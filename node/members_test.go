package node_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/node"
)

func nodeID(t testing.TB) node.NodeID {
	return node.NodeIDOf(newKey(t).Public().(ed25519.PublicKey))
}

func TestMemberListRoundTrip(t *testing.T) {
	key := newKey(t)
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey))
	a, b := nodeID(t), nodeID(t)
	now := time.Now()
	l, err := node.NewMemberList(key, 3, node.MembersOnly, []node.Member{{Node: a, Name: "alice"}, {Node: b}}, now)
	if err != nil {
		t.Fatal(err)
	}
	raw := l.Bytes()
	got, err := node.ParseMemberListFor(site, raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 3 || got.Policy != node.MembersOnly || got.Issued.UnixMilli() != now.UnixMilli() ||
		len(got.Members) != 2 || !got.Has(a) || !got.Has(b) || got.Has(nodeID(t)) {
		t.Fatalf("decoded %+v", got)
	}
	for _, m := range got.Members {
		if m.Node == a && m.Name != "alice" || m.Node == b && m.Name != "" {
			t.Fatalf("member %+v", m)
		}
	}
	// Every single-byte change is refused.
	for i := range raw {
		m := append([]byte(nil), raw...)
		m[i] ^= 0x40
		if _, err := node.ParseMemberList(m); err == nil {
			t.Fatalf("list with byte %d flipped accepted", i)
		}
	}
	for i := 0; i < len(raw); i++ {
		if _, err := node.ParseMemberList(raw[:i]); !errors.Is(err, node.ErrBadMemberList) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	// A list signed by another key claiming this site.
	other := newKey(t)
	forged, _ := node.NewMemberList(other, 4, node.MembersOnly, nil, now)
	fb := forged.Bytes()
	copy(fb[1:33], site[:])
	if _, err := node.ParseMemberList(fb); !errors.Is(err, node.ErrBadSignature) {
		t.Fatalf("forged: %v", err)
	}
	if _, err := node.ParseMemberListFor(site, forged.Bytes()); !errors.Is(err, node.ErrWrongSite) {
		t.Fatalf("other site: %v", err)
	}
	// Garbage just under the bound is refused.
	if _, err := node.ParseMemberList(append(make([]byte, node.MaxMembersSize-10), 1)); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestMemberListRefusals(t *testing.T) {
	key := newKey(t)
	a := nodeID(t)
	now := time.Now()
	if _, err := node.NewMemberList(key, 1, node.MembersOnly, []node.Member{{Node: a}, {Node: a}}, now); !errors.Is(err, node.ErrBadMemberList) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := node.NewMemberList(key, 1, 0, nil, now); !errors.Is(err, node.ErrBadMemberList) {
		t.Fatalf("policy 0: %v", err)
	}
	if _, err := node.NewMemberList(key, 1, node.MembersOnly, []node.Member{{Node: a, Name: strings.Repeat("x", 65)}}, now); !errors.Is(err, node.ErrTooLarge) {
		t.Fatalf("long name: %v", err)
	}
	if _, err := node.NewMemberList(key, 1, node.MembersOnly, []node.Member{{Node: a, Name: "\xff"}}, now); !errors.Is(err, node.ErrBadMemberList) {
		t.Fatalf("bad UTF-8: %v", err)
	}
	many := make([]node.Member, node.MaxMembers+1)
	for i := range many {
		many[i] = node.Member{Node: nodeID(t)}
	}
	if _, err := node.NewMemberList(key, 1, node.MembersOnly, many, now); !errors.Is(err, node.ErrTooLarge) {
		t.Fatalf("too many: %v", err)
	}
	// The largest list fits MaxMembersSize; one byte more is refused unread.
	for i := range many {
		many[i].Name = strings.Repeat("n", node.MaxMemberName)
	}
	full, err := node.NewMemberList(key, 1, node.MembersOnly, many[:node.MaxMembers], now)
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Bytes()) != node.MaxMembersSize {
		t.Fatalf("largest list %d bytes, bound %d", len(full.Bytes()), node.MaxMembersSize)
	}
	if _, err := node.ParseMemberList(append(full.Bytes(), 0)); !errors.Is(err, node.ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
}

func TestMemberStoreNoRollback(t *testing.T) {
	key := newKey(t)
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey))
	s := node.NewMemberStore(node.NewMemMeta())
	if _, err := s.Latest(site); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("empty: %v", err)
	}
	a, b := nodeID(t), nodeID(t)
	add := func(id node.NodeID) func(node.Policy, []node.Member) (node.Policy, []node.Member, error) {
		return func(p node.Policy, ms []node.Member) (node.Policy, []node.Member, error) {
			return node.MembersOnly, append(ms, node.Member{Node: id}), nil
		}
	}
	l1, err := s.Edit(key, time.Now(), add(a))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := s.Edit(key, time.Now(), add(b))
	if err != nil {
		t.Fatal(err)
	}
	if l1.Seq != 1 || l2.Seq != 2 || !l2.Has(a) || !l2.Has(b) || l2.Policy != node.MembersOnly {
		t.Fatalf("lists %+v %+v", l1, l2)
	}
	if err := s.Accept(l1); !errors.Is(err, node.ErrStaleRecord) {
		t.Fatalf("older seq: %v", err)
	}
	if err := s.Accept(l2); !errors.Is(err, node.ErrStaleRecord) {
		t.Fatalf("same seq: %v", err)
	}
	l9, _ := node.NewMemberList(key, 9, node.MembersFirst, nil, time.Now())
	if err := s.Accept(l9); err != nil {
		t.Fatal(err)
	}
	got, err := s.Latest(site)
	if err != nil || got.Seq != 9 || got.Has(a) {
		t.Fatalf("latest %+v, %v", got, err)
	}
}

func FuzzMemberList(f *testing.F) {
	key := newKey(f)
	l, _ := node.NewMemberList(key, 1, node.MembersFirst, []node.Member{{Node: nodeID(f), Name: "n"}, {Node: nodeID(f)}}, time.Now())
	f.Add(l.Bytes())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := node.ParseMemberList(data)
		if err != nil {
			if !errors.Is(err, node.ErrBadMemberList) && !errors.Is(err, node.ErrBadSignature) && !errors.Is(err, node.ErrTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if string(l.Bytes()) != string(data) {
			t.Fatal("accepted a non-canonical encoding")
		}
	})
}
