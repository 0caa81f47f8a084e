package node

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"
)

// MemberList is the set of seeders a site's operator admits, by node key,
// and the site's policy towards them; signed by the site key and versioned
// like a RootRecord: a list with a lower or equal sequence never replaces the
// one held.
//
// Wire form (MarshalBinary), all integers big-endian:
//
//	version   1 byte    = 1
//	site      32 bytes  ed25519 public key
//	seq       8 bytes   uint64, strictly growing per site
//	issued    8 bytes   int64, Unix milliseconds
//	policy    1 byte    1 members only, 2 members first
//	count     2 bytes   uint16, ≤ MaxMembers
//	count × { node 32 bytes; nameLen 1 byte, ≤ MaxMemberName; name, UTF-8 }
//	sig       64 bytes  ed25519 signature
//
// Members are sorted by node key, each listed once, so the encoding has one
// form per list. The signature covers MembersDomain followed by every byte
// before sig.
type MemberList struct {
	Site    SiteID
	Seq     uint64
	Issued  time.Time // millisecond precision
	Policy  Policy
	Members []Member // sorted by Node, no duplicates
	Sig     [ed25519.SignatureSize]byte
}

// Member is one admitted seeder.
type Member struct {
	Node NodeID
	Name string // optional, at most MaxMemberName bytes of UTF-8
}

// Policy says how the relay and page agents treat peers that are not members.
type Policy uint8

// Policies.
const (
	// MembersOnly: only members are handed out to visitors.
	MembersOnly Policy = 1
	// MembersFirst: members are handed out before other peers.
	MembersFirst Policy = 2
)

// Valid reports whether p is a known policy.
func (p Policy) Valid() bool { return p == MembersOnly || p == MembersFirst }

// String returns "members-only" or "members-first".
func (p Policy) String() string {
	switch p {
	case MembersOnly:
		return "members-only"
	case MembersFirst:
		return "members-first"
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ParsePolicy parses the String form. Errors wrap ErrBadMemberList.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "members-only":
		return MembersOnly, nil
	case "members-first":
		return MembersFirst, nil
	}
	return 0, fmt.Errorf("policy %q: want members-only or members-first: %w", s, ErrBadMemberList)
}

// MembersDomain separates member-list signatures from every other use of a
// site key.
const MembersDomain = "hearth member list v1\x00"

// Member list bounds. MaxMembersSize keeps a list, base64-encoded in a relay
// message, within the relay's default message limit.
const (
	MaxMembers     = 96
	MaxMemberName  = 64
	membersFixed   = 1 + 32 + 8 + 8 + 1 + 2
	MaxMembersSize = membersFixed + MaxMembers*(32+1+MaxMemberName) + ed25519.SignatureSize
)

const membersVersion = 1

// NewMemberList builds and signs a list with key. It sorts members by node
// key. Errors wrap ErrBadMemberList (a duplicate, a bad name or policy) or
// ErrTooLarge.
func NewMemberList(key ed25519.PrivateKey, seq uint64, policy Policy, members []Member, issued time.Time) (*MemberList, error) {
	l := &MemberList{
		Site:    SiteIDOf(key.Public().(ed25519.PublicKey)),
		Seq:     seq,
		Issued:  time.UnixMilli(issued.UnixMilli()),
		Policy:  policy,
		Members: slices.Clone(members),
	}
	slices.SortFunc(l.Members, func(a, b Member) int { return a.Node.Compare(b.Node) })
	if err := l.check(); err != nil {
		return nil, fmt.Errorf("signing member list: %w", err)
	}
	copy(l.Sig[:], ed25519.Sign(key, append([]byte(MembersDomain), l.body()...)))
	return l, nil
}

func (l *MemberList) check() error {
	if !l.Policy.Valid() {
		return fmt.Errorf("policy %d: %w", l.Policy, ErrBadMemberList)
	}
	if len(l.Members) > MaxMembers {
		return fmt.Errorf("%d members, limit %d: %w", len(l.Members), MaxMembers, ErrTooLarge)
	}
	for i, m := range l.Members {
		if len(m.Name) > MaxMemberName {
			return fmt.Errorf("member name of %d bytes, limit %d: %w", len(m.Name), MaxMemberName, ErrTooLarge)
		}
		if !utf8.ValidString(m.Name) {
			return fmt.Errorf("member name not UTF-8: %w", ErrBadMemberList)
		}
		if i > 0 && l.Members[i-1].Node.Compare(m.Node) >= 0 {
			return fmt.Errorf("member %s listed twice or out of order: %w", m.Node, ErrBadMemberList)
		}
	}
	return nil
}

func (l *MemberList) body() []byte {
	b := make([]byte, 0, membersFixed+len(l.Members)*(33+16))
	b = append(b, membersVersion)
	b = append(b, l.Site[:]...)
	b = binary.BigEndian.AppendUint64(b, l.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(l.Issued.UnixMilli()))
	b = append(b, byte(l.Policy))
	b = binary.BigEndian.AppendUint16(b, uint16(len(l.Members)))
	for _, m := range l.Members {
		b = append(b, m.Node[:]...)
		b = append(b, byte(len(m.Name)))
		b = append(b, m.Name...)
	}
	return b
}

// MarshalBinary returns the wire form.
func (l *MemberList) MarshalBinary() ([]byte, error) { return append(l.body(), l.Sig[:]...), nil }

// Bytes returns the wire form.
func (l *MemberList) Bytes() []byte { b, _ := l.MarshalBinary(); return b }

// Has reports whether id is a member.
func (l *MemberList) Has(id NodeID) bool {
	if l == nil {
		return false
	}
	_, ok := slices.BinarySearchFunc(l.Members, id, func(m Member, id NodeID) int { return m.Node.Compare(id) })
	return ok
}

// ParseMemberList decodes a list's wire form and verifies its signature
// under the site key it names. It does not check which site the caller
// expects nor the sequence. Errors wrap ErrBadMemberList, ErrTooLarge or
// ErrBadSignature.
func ParseMemberList(b []byte) (*MemberList, error) {
	if len(b) > MaxMembersSize {
		return nil, fmt.Errorf("member list of %d bytes, limit %d: %w", len(b), MaxMembersSize, ErrTooLarge)
	}
	if len(b) < membersFixed+ed25519.SignatureSize {
		return nil, fmt.Errorf("member list truncated at %d bytes: %w", len(b), ErrBadMemberList)
	}
	if b[0] != membersVersion {
		return nil, fmt.Errorf("member list version %d: %w", b[0], ErrBadMemberList)
	}
	l := &MemberList{}
	copy(l.Site[:], b[1:33])
	l.Seq = binary.BigEndian.Uint64(b[33:41])
	l.Issued = time.UnixMilli(int64(binary.BigEndian.Uint64(b[41:49])))
	l.Policy = Policy(b[49])
	n := int(binary.BigEndian.Uint16(b[50:52]))
	if n > MaxMembers {
		return nil, fmt.Errorf("member list of %d members: %w", n, ErrTooLarge)
	}
	body := b[:len(b)-ed25519.SignatureSize]
	p := membersFixed
	l.Members = make([]Member, 0, n)
	for range n {
		if len(body)-p < 33 {
			return nil, fmt.Errorf("member list truncated in member %d: %w", len(l.Members), ErrBadMemberList)
		}
		var m Member
		copy(m.Node[:], body[p:p+32])
		k := int(body[p+32])
		p += 33
		if len(body)-p < k {
			return nil, fmt.Errorf("member list truncated in a name: %w", ErrBadMemberList)
		}
		m.Name = string(body[p : p+k])
		p += k
		l.Members = append(l.Members, m)
	}
	if p != len(body) {
		return nil, fmt.Errorf("member list: %d bytes after the members: %w", len(body)-p, ErrBadMemberList)
	}
	if err := l.check(); err != nil {
		if errors.Is(err, ErrBadMemberList) {
			return nil, fmt.Errorf("member list: %w", err)
		}
		return nil, fmt.Errorf("member list: %v: %w", err, ErrBadMemberList)
	}
	copy(l.Sig[:], b[len(body):])
	if !ed25519.Verify(l.Site.PublicKey(), append([]byte(MembersDomain), body...), l.Sig[:]) {
		return nil, fmt.Errorf("member list seq %d for %s: %w", l.Seq, l.Site, ErrBadSignature)
	}
	return l, nil
}

// ParseMemberListFor parses b and checks it is for site. Errors wrap those
// of ParseMemberList or ErrWrongSite.
func ParseMemberListFor(site SiteID, b []byte) (*MemberList, error) {
	l, err := ParseMemberList(b)
	if err != nil {
		return nil, err
	}
	if l.Site != site {
		return nil, fmt.Errorf("member list for %s, want %s: %w", l.Site, site, ErrWrongSite)
	}
	return l, nil
}

// CheckNewerMembers returns nil when next may replace cur (cur may be nil):
// same site and a strictly higher sequence. Errors wrap ErrWrongSite or
// ErrStaleRecord.
func CheckNewerMembers(cur, next *MemberList) error {
	if cur == nil {
		return nil
	}
	if cur.Site != next.Site {
		return fmt.Errorf("member list for %s, want %s: %w", next.Site, cur.Site, ErrWrongSite)
	}
	if next.Seq <= cur.Seq {
		return fmt.Errorf("member list seq %d, have %d: %w", next.Seq, cur.Seq, ErrStaleRecord)
	}
	return nil
}

// MemberStore keeps the latest member list of each site in a MetaStore,
// under "members/" + site ID text. It accepts only a list that verifies and
// is newer than the one held. Safe for concurrent use.
type MemberStore struct {
	mu sync.Mutex
	m  MetaStore
}

// NewMemberStore returns a store over m.
func NewMemberStore(m MetaStore) *MemberStore { return &MemberStore{m: m} }

func membersKey(site SiteID) string { return "members/" + site.String() }

// Latest returns the list held for site, or an error wrapping ErrNotFound.
func (s *MemberStore) Latest(site SiteID) (*MemberList, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest(site)
}

func (s *MemberStore) latest(site SiteID) (*MemberList, error) {
	b, err := s.m.GetMeta(membersKey(site))
	if err != nil {
		return nil, fmt.Errorf("member list of %s: %w", site, err)
	}
	return ParseMemberListFor(site, b)
}

// Accept stores l if it is newer than the list held for its site. Errors
// wrap ErrStaleRecord or the store's error.
func (s *MemberStore) Accept(l *MemberList) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.latest(l.Site)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := CheckNewerMembers(cur, l); err != nil {
		return err
	}
	return s.m.PutMeta(membersKey(l.Site), l.Bytes())
}

// Edit signs and stores the next list of key's site: edit gets a copy of
// the members held (none, and policy MembersFirst, when no list is held)
// and returns the new members and policy. The new list's sequence is one
// above the held one's.
func (s *MemberStore) Edit(key ed25519.PrivateKey, now time.Time, edit func(Policy, []Member) (Policy, []Member, error)) (*MemberList, error) {
	site := SiteIDOf(key.Public().(ed25519.PublicKey))
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.latest(site)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	policy, members, seq := MembersFirst, []Member(nil), uint64(1)
	if cur != nil {
		policy, members, seq = cur.Policy, slices.Clone(cur.Members), cur.Seq+1
	}
	policy, members, err = edit(policy, members)
	if err != nil {
		return nil, err
	}
	l, err := NewMemberList(key, seq, policy, members, now)
	if err != nil {
		return nil, err
	}
	if err := s.m.PutMeta(membersKey(site), l.Bytes()); err != nil {
		return nil, err
	}
	return l, nil
}
