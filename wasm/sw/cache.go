//go:build js && wasm

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"syscall/js"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/wasm/internal/agentproto"
	"github.com/hearthcdn/hearth/wasm/internal/jsx"
)

// Cache Storage names and keys (the block cache's layout is shared with
// the page agent, see agentproto). Bump the version when the layout changes.
const (
	blockCacheName = agentproto.BlockCacheName
	metaCacheName  = "hearth-meta-v1"
	blockKeyPrefix = "/.hearth/block/"
	metaRecord     = "/.hearth/meta/record"
	metaIndex      = "/.hearth/meta/lru"
)

const (
	// memLimit bounds the in-memory tier, in bytes: the blocks read or
	// written last, so a page's subresources do not each go to Cache Storage
	// for the same directory blocks.
	memLimit = 16 << 20
	// writeQueue bounds blocks waiting to be written to Cache Storage;
	// beyond it, puts are dropped (the cache is an optimisation).
	writeQueue = 512
	// saveDelay is how long after the last change the LRU index is saved.
	saveDelay = 2 * time.Second
	// pendingLimit bounds the bytes queued for writing.
	pendingLimit = 32 << 20
	// writeHoldMax is how long a queued block may wait for the worker to
	// be idle before it is written anyway: Cache Storage writes cost the
	// worker's thread about a millisecond each, which responses in
	// progress need more.
	writeHoldMax = 2 * time.Second
	// writeBatch and writeBatchBytes bound the blocks written with one
	// call into JavaScript.
	writeBatch      = 64
	writeBatchBytes = 4 << 20
)

// blockCache is the worker's verified block cache (serve.Cache): Cache
// Storage entries keyed {origin}/.hearth/block/{cid}, bounded to limit bytes
// by an LRU index that is itself saved in Cache Storage (metaIndex), so the
// bound and the recency survive the worker being stopped. A small memory
// tier sits in front. Entries are verified on every read by serve; the
// cache does not trust Cache Storage, which any script of the origin can
// write to.
type blockCache struct {
	origin  string
	limit   int64
	onError func(reason, detail string)
	queue   chan queued
	active  atomic.Int32  // responses in progress (see begin)
	idle    chan struct{} // capacity 1: active dropped to 0

	mu      sync.Mutex
	store   js.Value // the opened block cache, or undefined
	meta    js.Value
	index   map[string]*entry // by CID key: what Cache Storage holds
	total   int64             // bytes in index
	tick    uint64
	pending map[string][]byte // queued for writing
	pendSz  int64
	mem     map[string]*memEntry
	memSize int64
	dirty   bool
	loaded  bool // index reconciled with Cache Storage: it lists all it holds
}

type queued struct {
	b  node.Block
	at time.Time
}

type entry struct {
	size int64
	used uint64 // tick of last use
}

type memEntry struct {
	data []byte
	used uint64
}

func newBlockCache(origin string, limit int64, onError func(reason, detail string)) *blockCache {
	return &blockCache{
		origin:  origin,
		limit:   limit,
		onError: onError,
		queue:   make(chan queued, writeQueue),
		idle:    make(chan struct{}, 1),
		index:   make(map[string]*entry),
		pending: make(map[string][]byte),
		mem:     make(map[string]*memEntry),
	}
}

// start opens Cache Storage, loads the index and starts the writer, in a
// goroutine owned by the cache for the worker's lifetime.
func (c *blockCache) start() {
	go func() {
		ctx := context.Background()
		if err := c.open(ctx); err != nil {
			c.onError("cache-unavailable", err.Error())
		} else if err := c.loadIndex(ctx); err != nil {
			c.onError("cache-index", err.Error())
		}
		c.writeLoop(ctx)
	}()
}

func (c *blockCache) open(ctx context.Context) error {
	caches := jsx.Global().Get("caches")
	if caches.IsUndefined() {
		return errors.New("no Cache Storage")
	}
	store, err := jsx.Await(ctx, caches.Call("open", blockCacheName))
	if err != nil {
		return fmt.Errorf("opening %s: %w", blockCacheName, err)
	}
	meta, err := jsx.Await(ctx, caches.Call("open", metaCacheName))
	if err != nil {
		return fmt.Errorf("opening %s: %w", metaCacheName, err)
	}
	c.mu.Lock()
	c.store, c.meta = store, meta
	c.mu.Unlock()
	return nil
}

// handles returns the opened caches, opening them if start has not yet.
func (c *blockCache) handles(ctx context.Context) (store, meta js.Value, err error) {
	c.mu.Lock()
	store, meta = c.store, c.meta
	c.mu.Unlock()
	if store.IsUndefined() || meta.IsUndefined() {
		if err := c.open(ctx); err != nil {
			return js.Undefined(), js.Undefined(), err
		}
		c.mu.Lock()
		store, meta = c.store, c.meta
		c.mu.Unlock()
	}
	return store, meta, nil
}

func (c *blockCache) key(k cid.Cid) string { return agentproto.BlockKey(c.origin, k) }

// Get implements serve.Cache.
func (c *blockCache) Get(ctx context.Context, k cid.Cid) ([]byte, error) {
	ks := k.KeyString()
	c.mu.Lock()
	c.tick++
	if m, ok := c.mem[ks]; ok {
		m.used = c.tick
		if e, ok := c.index[ks]; ok {
			e.used = c.tick
		}
		c.mu.Unlock()
		return m.data, nil
	}
	if d, ok := c.pending[ks]; ok {
		c.mu.Unlock()
		return d, nil
	}
	if e, ok := c.index[ks]; ok {
		e.used = c.tick
		c.dirty = true
	} else if c.loaded {
		// The index lists every block Cache Storage holds once loaded:
		// no need to ask it.
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", k, node.ErrNotFound)
	}
	c.mu.Unlock()
	store, _, err := c.handles(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", node.ErrNotFound, err)
	}
	resp, err := jsx.Await(ctx, store.Call("match", c.key(k)))
	if err != nil {
		return nil, fmt.Errorf("reading cache: %w: %w", node.ErrNotFound, err)
	}
	if resp.IsUndefined() {
		return nil, fmt.Errorf("%s: %w", k, node.ErrNotFound)
	}
	ab, err := jsx.Await(ctx, resp.Call("arrayBuffer"))
	if err != nil {
		return nil, fmt.Errorf("reading cache: %w: %w", node.ErrNotFound, err)
	}
	d, err := jsx.Bytes(ab)
	if err != nil {
		return nil, fmt.Errorf("reading cache: %w: %w", node.ErrNotFound, err)
	}
	c.mu.Lock()
	c.addMemLocked(ks, d)
	if _, ok := c.index[ks]; !ok { // an entry the index lost: adopt it
		c.index[ks] = &entry{size: int64(len(d)), used: c.tick}
		c.total += int64(len(d))
		c.dirty = true
	}
	c.mu.Unlock()
	return d, nil
}

// Put implements serve.Cache: the block is readable at once, and written
// to Cache Storage by the writer goroutine.
func (c *blockCache) Put(b node.Block) {
	ks := b.Cid.KeyString()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	c.addMemLocked(ks, b.Data)
	if _, ok := c.index[ks]; ok {
		return
	}
	if _, ok := c.pending[ks]; ok {
		return
	}
	if int64(len(b.Data)) > c.limit || c.pendSz+int64(len(b.Data)) > pendingLimit {
		return // writer behind: drop
	}
	select {
	case c.queue <- queued{b: b, at: time.Now()}:
		c.pending[ks] = b.Data
		c.pendSz += int64(len(b.Data))
	default: // writer behind: drop
	}
}

// begin marks a response in progress; the returned func marks its end.
// Cache Storage writes wait while responses are in progress (at most
// writeHoldMax).
func (c *blockCache) begin() (end func()) {
	c.active.Add(1)
	return sync.OnceFunc(func() {
		if c.active.Add(-1) == 0 {
			select {
			case c.idle <- struct{}{}:
			default:
			}
		}
	})
}

// waitIdle waits until no response is in progress, or until hold has passed
// since at.
func (c *blockCache) waitIdle(at time.Time) {
	for c.active.Load() > 0 {
		left := writeHoldMax - time.Since(at)
		if left <= 0 {
			return
		}
		t := time.NewTimer(left)
		select {
		case <-c.idle:
		case <-t.C:
		}
		t.Stop()
	}
}

// Delete implements serve.Cache.
func (c *blockCache) Delete(k cid.Cid) {
	ks := k.KeyString()
	c.mu.Lock()
	if m, ok := c.mem[ks]; ok {
		c.memSize -= int64(len(m.data))
		delete(c.mem, ks)
	}
	if d, ok := c.pending[ks]; ok {
		c.pendSz -= int64(len(d))
		delete(c.pending, ks)
	}
	if e, ok := c.index[ks]; ok {
		c.total -= e.size
		delete(c.index, ks)
		c.dirty = true
	}
	store := c.store
	c.mu.Unlock()
	if !store.IsUndefined() {
		_, _ = jsx.Try(func() js.Value { return store.Call("delete", c.key(k)) })
	}
}

func (c *blockCache) addMemLocked(ks string, d []byte) {
	if m, ok := c.mem[ks]; ok {
		m.used = c.tick
		return
	}
	if len(d) > memLimit/4 {
		return
	}
	c.mem[ks] = &memEntry{data: d, used: c.tick}
	c.memSize += int64(len(d))
	if c.memSize <= memLimit {
		return
	}
	// Evict the least recently used half, by size.
	keys := make([]string, 0, len(c.mem))
	for k := range c.mem {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return c.mem[keys[i]].used < c.mem[keys[j]].used })
	for _, k := range keys {
		if c.memSize <= memLimit/2 {
			break
		}
		c.memSize -= int64(len(c.mem[k].data))
		delete(c.mem, k)
	}
}

// writeLoop writes queued blocks to Cache Storage, evicts beyond the limit
// and saves the index saveDelay after the last change. It runs for the
// worker's lifetime.
func (c *blockCache) writeLoop(ctx context.Context) {
	save := time.NewTimer(saveDelay)
	defer save.Stop()
	for {
		select {
		case q := <-c.queue:
			c.waitIdle(q.at)
			batch, size := []node.Block{q.b}, len(q.b.Data)
		more:
			for len(batch) < writeBatch && size < writeBatchBytes {
				select {
				case q := <-c.queue:
					batch = append(batch, q.b)
					size += len(q.b.Data)
				default:
					break more
				}
			}
			c.write(ctx, batch, int64(size))
			if !save.Stop() {
				select {
				case <-save.C:
				default:
				}
			}
			save.Reset(saveDelay)
		case <-save.C:
			c.mu.Lock()
			dirty := c.dirty
			c.dirty = false
			c.mu.Unlock()
			if dirty {
				if err := c.saveIndex(ctx); err != nil {
					c.onError("cache-index", err.Error())
				}
			}
			save.Reset(saveDelay)
		}
	}
}

// write stores blocks (size bytes in all) in Cache Storage, with one call
// to the bootstrap's hearthPutAll.
func (c *blockCache) write(ctx context.Context, blocks []node.Block, size int64) {
	defer func() {
		c.mu.Lock()
		for _, b := range blocks {
			ks := b.Cid.KeyString()
			if d, ok := c.pending[ks]; ok {
				c.pendSz -= int64(len(d))
				delete(c.pending, ks)
			}
		}
		c.mu.Unlock()
	}()
	store, _, err := c.handles(ctx)
	if err != nil {
		return
	}
	c.evict(ctx, size)
	keys := make([]any, len(blocks))
	datas := make([]any, len(blocks))
	for i, b := range blocks {
		keys[i] = c.key(b.Cid)
		datas[i] = jsx.Uint8Array(b.Data)
	}
	var failed js.Value
	p, err := jsx.Try(func() js.Value { return jsx.Global().Call("hearthPutAll", store, js.ValueOf(keys), js.ValueOf(datas)) })
	if err == nil {
		failed, err = jsx.Await(ctx, p)
	}
	if err != nil {
		return
	}
	bad := make(map[string]bool, failed.Length())
	quota := ""
	for i := 0; i < failed.Length(); i++ {
		f := failed.Index(i)
		bad[jsx.String(f.Index(0))] = true
		if name := jsx.String(f.Index(1)); name == "QuotaExceededError" {
			quota = name
		}
	}
	c.mu.Lock()
	for i, b := range blocks {
		if bad[keys[i].(string)] {
			continue
		}
		c.tick++
		ks := b.Cid.KeyString()
		if _, ok := c.index[ks]; !ok {
			c.index[ks] = &entry{size: int64(len(b.Data)), used: c.tick}
			c.total += int64(len(b.Data))
		}
	}
	c.dirty = true
	if quota != "" {
		// The browser gives less than configured: shrink to what fits.
		c.limit = max(c.total*3/4, 1<<20)
	}
	c.mu.Unlock()
	if quota != "" {
		c.onError("cache-quota", quota+": the browser refused to store more blocks")
		c.evict(ctx, 0)
	}
}

// evict deletes least recently used blocks until room more bytes fit.
func (c *blockCache) evict(ctx context.Context, room int64) {
	c.mu.Lock()
	if c.total+room <= c.limit {
		c.mu.Unlock()
		return
	}
	keys := make([]string, 0, len(c.index))
	for k := range c.index {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return c.index[keys[i]].used < c.index[keys[j]].used })
	target := c.limit * 9 / 10 // leave headroom, so eviction is not per put
	var victims []string
	for _, k := range keys {
		if c.total+room <= target {
			break
		}
		c.total -= c.index[k].size
		delete(c.index, k)
		if m, ok := c.mem[k]; ok {
			c.memSize -= int64(len(m.data))
			delete(c.mem, k)
		}
		victims = append(victims, k)
	}
	c.dirty = true
	store := c.store
	c.mu.Unlock()
	for _, k := range victims {
		id, err := cid.Cast([]byte(k))
		if err != nil {
			continue
		}
		p, err := jsx.Try(func() js.Value { return store.Call("delete", c.key(id)) })
		if err == nil {
			_, _ = jsx.Await(ctx, p)
		}
	}
}

// Index wire form (metaIndex): repeated {uvarint len, CID bytes, uvarint
// size, uvarint used}.

func (c *blockCache) saveIndex(ctx context.Context) error {
	c.mu.Lock()
	var b []byte
	for k, e := range c.index {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(e.size))
		b = binary.AppendUvarint(b, e.used)
	}
	c.mu.Unlock()
	return c.putMeta(ctx, metaIndex, b)
}

// loadIndex reads the saved index, then reconciles it with Cache Storage,
// which is the truth: index entries with no block are dropped, and blocks
// the index does not list (written in the last saveDelay before the worker
// was stopped) are adopted as the most recently used, at the size Cache
// Storage gives. Only entries that are not blocks at all (no CID, or over
// node.MaxBlockLen) are deleted. A worker stopped at any moment thus keeps
// every block it wrote; serve verifies each block on read, so an adopted
// entry is trusted no more than any other.
func (c *blockCache) loadIndex(ctx context.Context) error {
	saved := make(map[string]*entry)
	var maxUsed uint64
	if b, err := c.getMeta(ctx, metaIndex); err == nil {
		for len(b) > 0 {
			n, k := binary.Uvarint(b)
			if k <= 0 || uint64(len(b)-k) < n {
				break
			}
			key := string(b[k : k+int(n)])
			b = b[k+int(n):]
			size, k1 := binary.Uvarint(b)
			if k1 <= 0 {
				break
			}
			used, k2 := binary.Uvarint(b[k1:])
			if k2 <= 0 {
				break
			}
			b = b[k1+k2:]
			saved[key] = &entry{size: int64(size), used: used}
			maxUsed = max(maxUsed, used)
		}
	}
	store, _, err := c.handles(ctx)
	if err != nil {
		return err
	}
	reqs, err := jsx.Await(ctx, store.Call("keys"))
	if err != nil {
		return fmt.Errorf("listing cache: %w", err)
	}
	present := make(map[string]bool, reqs.Length())
	prefix := c.origin + blockKeyPrefix
	var orphans []orphan
	for i := 0; i < reqs.Length(); i++ {
		u := reqs.Index(i).Get("url").String()
		if len(u) <= len(prefix) || u[:len(prefix)] != prefix {
			continue
		}
		id, err := cid.Decode(u[len(prefix):])
		if err != nil {
			orphans = append(orphans, orphan{req: reqs.Index(i)})
			continue
		}
		if _, ok := saved[id.KeyString()]; !ok {
			orphans = append(orphans, orphan{key: id.KeyString(), req: reqs.Index(i)})
			continue
		}
		present[id.KeyString()] = true
	}
	adopted, unreadable := c.sizes(ctx, store, orphans)
	c.mu.Lock()
	for k, e := range saved {
		if !present[k] {
			continue
		}
		if _, ok := c.index[k]; ok { // used since start: keep the newer
			continue
		}
		c.index[k] = e
		c.total += e.size
	}
	c.tick = max(c.tick, maxUsed) + 1
	for k, size := range adopted {
		if _, ok := c.index[k]; ok { // written again since start
			continue
		}
		c.index[k] = &entry{size: size, used: c.tick}
		c.total += size
		c.dirty = true
	}
	c.loaded = true
	c.mu.Unlock()
	victims := unreadable
	for _, r := range victims {
		p, err := jsx.Try(func() js.Value { return store.Call("delete", r) })
		if err == nil {
			_, _ = jsx.Await(ctx, p)
		}
	}
	c.evict(ctx, 0)
	return nil
}

// orphan is a Cache Storage entry the saved index does not list.
type orphan struct {
	key string // CID key, "" for an entry whose URL holds no CID
	req js.Value
}

// sizes reads the size of each orphan's stored body (a Blob's size, which
// Chromium knows without reading the bytes). It returns the sizes of the
// orphans that are blocks, by CID key, and the requests of those that are
// not: no CID in the URL, unreadable, or larger than node.MaxBlockLen.
func (c *blockCache) sizes(ctx context.Context, store js.Value, orphans []orphan) (map[string]int64, []js.Value) {
	adopted := make(map[string]int64, len(orphans))
	var bad []js.Value
	var reqs []any
	var keys []string
	for _, o := range orphans {
		if o.key == "" {
			bad = append(bad, o.req)
			continue
		}
		reqs = append(reqs, o.req)
		keys = append(keys, o.key)
	}
	if len(reqs) == 0 {
		return adopted, bad
	}
	var got js.Value
	p, err := jsx.Try(func() js.Value { return jsx.Global().Call("hearthSizes", store, js.ValueOf(reqs)) })
	if err == nil {
		got, err = jsx.Await(ctx, p)
	}
	if err != nil || got.Length() != len(reqs) {
		// Sizes unknown: the entries cannot be bounded by the LRU, so
		// they go, as entries that are not blocks do.
		for _, r := range reqs {
			bad = append(bad, r.(js.Value))
		}
		return adopted, bad
	}
	for i, k := range keys {
		n := got.Index(i).Int()
		if n < 0 || n > node.MaxBlockLen {
			bad = append(bad, reqs[i].(js.Value))
			continue
		}
		adopted[k] = int64(n)
	}
	return adopted, bad
}

// putMeta stores a small value in the meta cache.
func (c *blockCache) putMeta(ctx context.Context, key string, b []byte) error {
	_, meta, err := c.handles(ctx)
	if err != nil {
		return err
	}
	resp := jsx.Global().Get("Response").New(jsx.Uint8Array(b))
	p, err := jsx.Try(func() js.Value { return meta.Call("put", c.origin+key, resp) })
	if err == nil {
		_, err = jsx.Await(ctx, p)
	}
	if err != nil {
		return fmt.Errorf("saving %s: %w", key, err)
	}
	return nil
}

// getMeta reads a value from the meta cache; node.ErrNotFound when absent.
func (c *blockCache) getMeta(ctx context.Context, key string) ([]byte, error) {
	_, meta, err := c.handles(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := jsx.Await(ctx, meta.Call("match", c.origin+key))
	if err != nil {
		return nil, err
	}
	if resp.IsUndefined() {
		return nil, node.ErrNotFound
	}
	ab, err := jsx.Await(ctx, resp.Call("arrayBuffer"))
	if err != nil {
		return nil, err
	}
	return jsx.Bytes(ab)
}
