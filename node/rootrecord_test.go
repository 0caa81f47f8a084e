package node_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/node"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRootRecordRoundTrip(t *testing.T) {
	key := newKey(t)
	root := node.Sum(node.CodecDagPB, []byte("root"))
	now := time.Now()
	r, err := node.NewRootRecord(key, 7, root, now)
	if err != nil {
		t.Fatal(err)
	}
	b := r.Bytes()
	if len(b) > node.MaxRecordSize {
		t.Fatalf("%d bytes", len(b))
	}
	got, err := node.ParseRootRecordFor(node.SiteIDOf(key.Public().(ed25519.PublicKey)), b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 7 || !got.Root.Equals(root) || got.Published.UnixMilli() != now.UnixMilli() || got.Site != r.Site {
		t.Fatalf("decoded %+v", got)
	}
	// Every single-byte change is refused.
	for i := range b {
		m := append([]byte(nil), b...)
		m[i] ^= 0x40
		if _, err := node.ParseRootRecord(m); err == nil {
			t.Fatalf("record with byte %d flipped accepted", i)
		}
	}
	// Truncated anywhere.
	for i := 0; i < len(b); i++ {
		if _, err := node.ParseRootRecord(b[:i]); !errors.Is(err, node.ErrBadRecord) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	// Signed by another key: a record claiming site A but signed by B.
	other := newKey(t)
	forged, _ := node.NewRootRecord(other, 8, root, now)
	fb := forged.Bytes()
	copy(fb[1:33], r.Site[:])
	if _, err := node.ParseRootRecord(fb); !errors.Is(err, node.ErrBadSignature) {
		t.Fatalf("forged: %v", err)
	}
	// A valid record of another site is refused for this one.
	if _, err := node.ParseRootRecordFor(r.Site, forged.Bytes()); !errors.Is(err, node.ErrWrongSite) {
		t.Fatalf("other site: %v", err)
	}
}

func TestRecordLogNoRollback(t *testing.T) {
	key := newKey(t)
	log := node.NewRecordLog(node.NewMemMeta())
	site := node.SiteIDOf(key.Public().(ed25519.PublicKey))
	if _, err := log.Latest(site); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("empty log: %v", err)
	}
	var recs []*node.RootRecord
	for i := 0; i < 3; i++ {
		r, err := log.SignNext(key, node.Sum(node.CodecDagPB, []byte{byte(i)}), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if r.Seq != uint64(i+1) {
			t.Fatalf("seq %d", r.Seq)
		}
		recs = append(recs, r)
	}
	for _, old := range recs {
		if err := log.Accept(old); !errors.Is(err, node.ErrStaleRecord) {
			t.Fatalf("replayed seq %d: %v", old.Seq, err)
		}
	}
	next, _ := node.NewRootRecord(key, 10, recs[0].Root, time.Now())
	if err := log.Accept(next); err != nil {
		t.Fatal(err)
	}
	latest, _ := log.Latest(site)
	if latest.Seq != 10 || len(log.History(site)) != 4 {
		t.Fatalf("latest %d, history %d", latest.Seq, len(log.History(site)))
	}
}

func TestSiteIDText(t *testing.T) {
	key := newKey(t)
	id := node.SiteIDOf(key.Public().(ed25519.PublicKey))
	s := id.String()
	if len(s) != 56 || s[0] != 'b' || strings.ToLower(s) != s {
		t.Fatalf("text form %q", s)
	}
	for _, in := range []string{s, strings.ToUpper(s)} {
		got, err := node.ParseSiteID(in)
		if err != nil || got != id {
			t.Fatalf("%q: %v", in, err)
		}
	}
	for _, bad := range []string{"", "b", "z" + s[1:], s[:40], s + "aa", "b" + strings.Repeat("a", 55)} {
		if _, err := node.ParseSiteID(bad); !errors.Is(err, node.ErrBadSiteID) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
