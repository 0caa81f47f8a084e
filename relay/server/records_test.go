package relayserver_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/relay"
	relayclient "github.com/hearthcdn/hearth/relay/client"
	relayserver "github.com/hearthcdn/hearth/relay/server"
)

func signRecord(t *testing.T, key []byte, seq uint64, root string) *node.RootRecord {
	t.Helper()
	rec, err := node.NewRootRecord(key, seq, testCID(t, root), time.UnixMilli(1_700_000_000_000+int64(seq)))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func nextRecord(t *testing.T, sub *relayclient.Subscription) *node.RootRecord {
	t.Helper()
	select {
	case rec, ok := <-sub.Records():
		if !ok {
			t.Fatal("records closed")
		}
		return rec
	case <-time.After(testTimeout):
		t.Fatal("no record")
	}
	return nil
}

func TestRootRecords(t *testing.T) { forModes(t, testRootRecords) }

func testRootRecords(t *testing.T) {
	r := startRelay(t, relayserver.Config{}, nil)
	origin := newClient(t, r, nil)
	early := newClient(t, r, nil)
	ctx := ctxT(t)
	siteKey := newKey(t)
	site := siteOf(siteKey)

	// A subscriber before any record gets nothing until one is published.
	earlySub, err := early.Subscribe(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	rec1 := signRecord(t, siteKey, 1, "v1")
	if err := origin.PublishRecord(ctx, rec1); err != nil {
		t.Fatal(err)
	}
	if got := nextRecord(t, earlySub); got.Seq != 1 || !got.Root.Equals(rec1.Root) {
		t.Fatalf("early subscriber got %+v", got)
	}

	// A later subscriber gets the latest at once.
	late := newClient(t, r, nil)
	lateSub, err := late.Subscribe(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	if got := nextRecord(t, lateSub); got.Seq != 1 {
		t.Fatalf("late subscriber got seq %d", got.Seq)
	}

	// Same or lower sequence: stale, refused, not forwarded.
	if err := origin.PublishRecord(ctx, signRecord(t, siteKey, 1, "other")); !errors.Is(err, relay.ErrStaleRecord) {
		t.Fatalf("same seq: %v", err)
	}
	// A forged record: right site, wrong key.
	forged := signRecord(t, newKey(t), 5, "evil")
	forged.Site = site
	if err := origin.PublishRecord(ctx, forged); !errors.Is(err, relay.ErrBadRecord) {
		t.Fatalf("forged: %v", err)
	}
	// A tampered record: signature no longer matches.
	tampered := signRecord(t, siteKey, 6, "v6")
	tampered.Seq = 7
	if err := origin.PublishRecord(ctx, tampered); !errors.Is(err, relay.ErrBadRecord) {
		t.Fatalf("tampered: %v", err)
	}

	// A newer one reaches both subscribers, in order.
	rec3 := signRecord(t, siteKey, 3, "v3")
	if err := origin.PublishRecord(ctx, rec3); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []*relayclient.Subscription{earlySub, lateSub} {
		if got := nextRecord(t, sub); got.Seq != 3 || !got.Root.Equals(rec3.Root) {
			t.Fatalf("got seq %d", got.Seq)
		}
	}
	if err := origin.PublishRecord(ctx, signRecord(t, siteKey, 2, "v2")); !errors.Is(err, relay.ErrStaleRecord) {
		t.Fatalf("rollback: %v", err)
	}

	// After unsubscribing, nothing more arrives and the channel closes.
	if err := earlySub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-earlySub.Records(); ok {
		t.Fatal("records channel open after Close")
	}
	if err := origin.PublishRecord(ctx, signRecord(t, siteKey, 4, "v4")); err != nil {
		t.Fatal(err)
	}
	if got := nextRecord(t, lateSub); got.Seq != 4 {
		t.Fatalf("got seq %d", got.Seq)
	}
	if n := r.counter("hearth_relay_records_published_total", ""); n != 3 {
		t.Fatalf("published %v", n)
	}
}

// TestRecordRawForgery sends records that no honest client would, by hand.
func TestRecordRawForgery(t *testing.T) { forModes(t, testRecordRawForgery) }

func testRecordRawForgery(t *testing.T) {
	r := startRelay(t, relayserver.Config{}, nil)
	p := helloRaw(t, r)
	siteKey := newKey(t)
	good := signRecord(t, siteKey, 9, "v9").Bytes()

	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1 // flip a signature bit
	p.send(&relay.Message{Type: relay.TypePublish, ID: 1, Record: bad})
	if m := p.expectError(relay.CodeBadRecord); m.ID != 1 {
		t.Fatalf("id %d", m.ID)
	}
	p.send(&relay.Message{Type: relay.TypePublish, ID: 2, Record: []byte("short")})
	p.expectError(relay.CodeBadRecord)
	p.send(&relay.Message{Type: relay.TypePublish, ID: 3, Record: make([]byte, 4096)})
	p.expectError(relay.CodeBadRecord)

	p.send(&relay.Message{Type: relay.TypePublish, ID: 4, Record: good})
	if m := p.recv(); m.Type != relay.TypeOK || m.ID != 4 {
		t.Fatalf("publish: %+v", m)
	}
	// Subscribe answers ok, then the record.
	p.send(&relay.Message{Type: relay.TypeSubscribe, ID: 5, Site: siteOf(siteKey).String()})
	if m := p.recv(); m.Type != relay.TypeOK || m.ID != 5 {
		t.Fatalf("subscribe: %+v", m)
	}
	if m := p.recv(); m.Type != relay.TypeRecord || m.Site != siteOf(siteKey).String() || string(m.Record) != string(good) {
		t.Fatalf("record: %+v", m)
	}
}

func TestSubscriptionLimit(t *testing.T) {
	r := startRelay(t, relayserver.Config{MaxSubscriptions: 2}, nil)
	c := newClient(t, r, nil)
	ctx := ctxT(t)
	for range 2 {
		if _, err := c.Subscribe(ctx, siteOf(newKey(t))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Subscribe(ctx, siteOf(newKey(t))); !errors.Is(err, relay.ErrTooManySubscriptions) || !relayclient.IsRefusal(err) {
		t.Fatalf("third subscription: %v", err)
	}
}

func TestRecordStoreEviction(t *testing.T) {
	r := startRelay(t, relayserver.Config{MaxRecords: 2}, nil)
	c := newClient(t, r, nil)
	ctx := ctxT(t)
	keys := []([]byte){newKey(t), newKey(t), newKey(t)}
	// Site 0 is subscribed: it must survive eviction.
	sub, err := c.Subscribe(ctx, siteOf(keys[0]))
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if err := c.PublishRecord(ctx, signRecord(t, k, 1, "r")); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	nextRecord(t, sub)
	// Site 1 was evicted (least recent, unsubscribed); site 0 kept.
	other := newClient(t, r, nil)
	sub0, err := other.Subscribe(ctx, siteOf(keys[0]))
	if err != nil {
		t.Fatal(err)
	}
	nextRecord(t, sub0)
	if n := r.counter("hearth_relay_records", ""); n != 2 {
		t.Fatalf("records held: %v", n)
	}
	// The relay forgot site 1's record, so seq 1 is new to it again; it
	// still refuses a replay of site 2's (held) and site 0's.
	if err := c.PublishRecord(ctx, signRecord(t, keys[1], 1, "r")); err != nil {
		t.Fatalf("site 1 again: %v", err)
	}
	if err := c.PublishRecord(ctx, signRecord(t, keys[0], 1, "r")); !errors.Is(err, relay.ErrStaleRecord) {
		t.Fatalf("site 0 again: %v", err)
	}
}
