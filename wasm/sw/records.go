//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall/js"
	"time"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/wasm/internal/jsx"
)

// recordTimeout bounds a root record fetch; after it the worker serves the
// latest record it holds.
const recordTimeout = 5 * time.Second

// records keeps the site's latest verified root record: the highest
// sequence ever accepted, persisted in Cache Storage so that it survives
// restarts and a rolled-back origin (or an attacker replaying an old
// record) cannot take the worker back to an older root.
type records struct {
	site    node.SiteID
	url     string // the origin's /.well-known/hearth/{site}/record
	cache   *blockCache
	onError func(reason, detail string)

	onNew func(*node.RootRecord) // a newer record was accepted; nil: none

	mu        sync.Mutex                      // serialises refreshes
	cur       atomic.Pointer[node.RootRecord] // the latest record; stored under mu, read anytime
	loaded    bool
	refreshed time.Time // when the last refresh ended

	// confirmed is when cur was last known to be the site's latest record
	// (Unix ns; 0: never): the origin served it, or a page agent whose relay
	// subscription is live pushed it or repeated it (agents repeat the
	// latest record while subscribed, and a newer one would have come
	// first). originAt is when the origin last answered a refresh.
	confirmed atomic.Int64
	originAt  atomic.Int64
	checking  atomic.Bool // a background refresh (recheck) is under way

	persistMu sync.Mutex
	persisted uint64 // sequence of the record last written
}

// recent returns the latest record, refreshing it unless a refresh
// finished less than maxAge ago (concurrent callers share one refresh).
func (r *records) recent(ctx context.Context, maxAge time.Duration) *node.RootRecord {
	r.mu.Lock()
	if r.loaded && !r.refreshed.IsZero() && time.Since(r.refreshed) < maxAge {
		rec := r.cur.Load()
		r.mu.Unlock()
		return rec
	}
	r.mu.Unlock()
	return r.refresh(ctx)
}

// refresh fetches the origin's record (revalidating any HTTP cache),
// verifies it and returns the latest record: the fetched one when it is
// newer, else the one held. A record that fails verification, is for
// another site or goes back in sequence is refused and reported; so is an
// unreachable origin, and the held record is used. nil when there is none.
func (r *records) refresh(ctx context.Context) *node.RootRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadLocked(ctx)
	defer func() { r.refreshed = time.Now() }()
	ctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	b, err := fetchBytes(ctx, r.url, "no-cache", node.MaxRecordSize)
	if err != nil {
		r.onError("record-unavailable", err.Error())
		return r.cur.Load()
	}
	now := time.Now().UnixNano()
	r.originAt.Store(now)
	if r.acceptLocked(ctx, b, false) {
		r.confirmed.Store(now)
	}
	return r.cur.Load()
}

// recheck refreshes the record in the background, unless a recheck is
// already under way.
func (r *records) recheck() {
	if !r.checking.CompareAndSwap(false, true) {
		return
	}
	go func() { // owned by r.checking: one at a time, bounded by recordTimeout
		defer r.checking.Store(false)
		r.refresh(context.Background())
	}()
}

// freshWithin reports whether a record is held that was known to be the
// latest less than maxAge ago. It never waits for a refresh in progress.
func (r *records) freshWithin(maxAge time.Duration) bool {
	c := r.confirmed.Load()
	return r.cur.Load() != nil && c != 0 && time.Since(time.Unix(0, c)) < maxAge
}

// originAge returns how long ago the origin last answered a refresh; a
// very long time if never.
func (r *records) originAge() time.Duration {
	at := r.originAt.Load()
	if at == 0 {
		return time.Duration(1<<63 - 1)
	}
	return time.Since(time.Unix(0, at))
}

// held returns the latest record without waiting for a refresh in
// progress; nil before the first refresh or offer.
func (r *records) held() *node.RootRecord { return r.cur.Load() }

// offer considers a record a page agent received from its relay
// subscription, new or repeated: the latest the relay knows. It confirms
// the held record when it is that record or a newer one. An older one
// (the relay has not heard of the newest yet) is ignored.
func (r *records) offer(ctx context.Context, b []byte) {
	if cur := r.cur.Load(); cur != nil && bytes.Equal(b, cur.Bytes()) {
		// The usual case, a repetition: verified when first accepted.
		r.confirmed.Store(time.Now().UnixNano())
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadLocked(ctx)
	if r.acceptLocked(ctx, b, true) {
		r.confirmed.Store(time.Now().UnixNano())
	}
}

// acceptLocked verifies b and makes it the held record if it is newer. It
// reports whether b is now the held record (newer, or the same). A record
// that fails verification is reported; so is one older than the held
// record unless quietOlder.
func (r *records) acceptLocked(ctx context.Context, b []byte, quietOlder bool) bool {
	rec, err := node.ParseRootRecordFor(r.site, b)
	if err != nil {
		r.onError("record-invalid", err.Error())
		return false
	}
	cur := r.cur.Load()
	if err := node.CheckNewer(cur, rec); err != nil {
		if rec.Seq == cur.Seq && rec.Root.Equals(cur.Root) {
			return true // the same record: the usual case
		}
		if !quietOlder || rec.Seq >= cur.Seq {
			r.onError("record-refused", err.Error())
		}
		return false
	}
	r.cur.Store(rec)
	if r.onNew != nil {
		r.onNew(rec)
	}
	// Persist off the request's path: a Cache Storage write can take a
	// hundred milliseconds. Writes are ordered by persistMu and skip a
	// record older than the last one written.
	go func() { // owned by persistMu; ends when the write is done
		r.persistMu.Lock()
		defer r.persistMu.Unlock()
		if rec.Seq <= r.persisted {
			return
		}
		if err := r.cache.putMeta(context.Background(), metaRecord, rec.Bytes()); err != nil {
			r.onError("record-not-persisted", err.Error())
			return
		}
		r.persisted = rec.Seq
	}()
	return true
}

// load reads the persisted record, once.
func (r *records) load(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadLocked(ctx)
}

// loadLocked reads the persisted record once.
func (r *records) loadLocked(ctx context.Context) {
	if r.loaded {
		return
	}
	r.loaded = true
	b, err := r.cache.getMeta(ctx, metaRecord)
	if err != nil {
		return
	}
	if rec, err := node.ParseRootRecordFor(r.site, b); err == nil {
		r.cur.Store(rec)
	}
}

// fetchBytes GETs url with the given cache mode and returns the body, at
// most limit bytes. Errors: network failures, a status other than 200, a
// larger body.
func fetchBytes(ctx context.Context, url, cacheMode string, limit int) ([]byte, error) {
	ac := jsx.Global().Get("AbortController").New()
	stop := context.AfterFunc(ctx, func() { ac.Call("abort") })
	defer stop()
	opts := jsx.Object(map[string]any{"cache": cacheMode, "signal": ac.Get("signal"), "credentials": "same-origin"})
	p, err := jsx.Try(func() js.Value { return jsx.Global().Call("fetch", url, opts) })
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	resp, err := jsx.Await(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	if st := resp.Get("status").Int(); st != 200 {
		return nil, fmt.Errorf("fetching %s: status %d", url, st)
	}
	ab, err := jsx.Await(ctx, resp.Call("arrayBuffer"))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if n := ab.Get("byteLength").Int(); n > limit {
		return nil, fmt.Errorf("%s: %d bytes: %w", url, n, node.ErrTooLarge)
	}
	return jsx.Bytes(ab)
}
