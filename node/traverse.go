package node

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	cid "github.com/ipfs/go-cid"
)

// Scope is how much of the DAG at the end of a path a request wants
// (the Trustless Gateway's dag-scope, https://specs.ipfs.tech/http-gateways/trustless-gateway/).
type Scope string

// Scopes.
const (
	// ScopeBlock: the blocks proving the path and the terminal block.
	ScopeBlock Scope = "block"
	// ScopeEntity: as block, plus what it takes to read the entity: a file's
	// blocks (limited by entity-bytes), a sharded directory's shards.
	ScopeEntity Scope = "entity"
	// ScopeAll: as block, plus the whole DAG under the terminal block.
	ScopeAll Scope = "all"
)

// ParseScope parses a dag-scope value; "" means ScopeAll, the spec's default.
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case "":
		return ScopeAll, nil
	case ScopeBlock, ScopeEntity, ScopeAll:
		return Scope(s), nil
	}
	return "", fmt.Errorf("dag-scope %q: must be block, entity or all", s)
}

// ByteRange is an entity-bytes range: From and To are inclusive byte
// offsets; a negative value counts back from the end; ToEnd means "*".
type ByteRange struct {
	From, To int64
	ToEnd    bool
}

// ParseByteRange parses "from:to" where to may be "*" (Trustless Gateway spec, entity-bytes).
func ParseByteRange(s string) (*ByteRange, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("entity-bytes %q: want from:to: %w", s, ErrBadRange)
	}
	from, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("entity-bytes %q: %w", s, ErrBadRange)
	}
	r := &ByteRange{From: from}
	if b == "*" {
		r.ToEnd = true
	} else if r.To, err = strconv.ParseInt(b, 10, 64); err != nil {
		return nil, fmt.Errorf("entity-bytes %q: %w", s, ErrBadRange)
	}
	if !r.ToEnd && from >= 0 && r.To >= 0 && r.To < from {
		return nil, fmt.Errorf("entity-bytes %q: to before from: %w", s, ErrBadRange)
	}
	return r, nil
}

// String returns the entity-bytes form of r.
func (r ByteRange) String() string {
	if r.ToEnd {
		return fmt.Sprintf("%d:*", r.From)
	}
	return fmt.Sprintf("%d:%d", r.From, r.To)
}

// Bounds resolves r against an entity of size bytes and returns the
// half-open interval [start, end), clamped to the entity.
func (r ByteRange) Bounds(size uint64) (start, end uint64) {
	abs := func(v int64) uint64 {
		if v < 0 {
			if uint64(-v) > size {
				return 0
			}
			return size - uint64(-v)
		}
		return min(uint64(v), size)
	}
	start = abs(r.From)
	if r.ToEnd {
		end = size
	} else {
		end = min(abs(r.To)+1, size)
		if r.To < 0 && uint64(-r.To) > size {
			end = 0
		}
	}
	if end < start {
		end = start
	}
	return start, end
}

// Request names a sub-DAG: the blocks from Root along Path, and what Scope
// and Bytes select at its end.
type Request struct {
	Root  cid.Cid
	Path  []string
	Scope Scope
	Bytes *ByteRange // nil: the whole entity
}

// Result describes the entity a traversal ended at.
type Result struct {
	Node *Node
	// Start and End are the byte interval of a file entity that the
	// traversal covered; both 0 for directories and symlinks.
	Start, End uint64
}

// Traverse walks req over src and calls emit once for each distinct block,
// in the order of the Trustless Gateway spec: the path's blocks, then the
// terminal entity depth-first, pre-order, skipping blocks already emitted.
//
// Its cost follows the distinct blocks, not the size the DAG claims: a
// sub-DAG already emitted whole is not walked again (entity-bytes walks only
// re-enter the few nodes holding the range's ends), and a sharded
// directory's shards are checked against their positions, each read once.
//
// Every block src returns is checked with Verify before use, and must be the
// block the traversal asked for; so the same function serves a CAR from a
// store and verifies a CAR from an untrusted peer (whose Getter yields the
// next block of the stream). src may be asked again for a block it already
// returned.
func Traverse(ctx context.Context, src Getter, req Request, emit func(Block) error) (*Result, error) {
	t := &traversal{ctx: ctx, src: src, emit: emit, seen: make(map[string]struct{})}
	return t.run(req)
}

// Walk is Traverse over blocks that were verified already (by Traverse or
// Verify, on their way in): the same blocks in the same order, decoded and
// checked for shape, but not hashed again. Use it only on such a source.
func Walk(ctx context.Context, src Getter, req Request, emit func(Block) error) (*Result, error) {
	t := &traversal{ctx: ctx, src: src, emit: emit, seen: make(map[string]struct{}), trusted: true}
	return t.run(req)
}

type traversal struct {
	ctx     context.Context
	src     Getter
	emit    func(Block) error
	seen    map[string]struct{}
	trusted bool // blocks were verified before: do not hash them again
}

// get fetches, verifies and (on first sight) emits c.
func (t *traversal) get(c cid.Cid) (*Node, []byte, bool, error) {
	if err := t.ctx.Err(); err != nil {
		return nil, nil, false, err
	}
	raw, err := t.src.Get(t.ctx, c)
	if err != nil {
		return nil, nil, false, err
	}
	k := c.KeyString()
	_, dup := t.seen[k]
	if !dup && !t.trusted {
		if err := Verify(c, raw); err != nil {
			return nil, nil, false, err
		}
	}
	n, err := Decode(c, raw)
	if err != nil {
		return nil, nil, false, err
	}
	if !dup {
		t.seen[k] = struct{}{}
		if err := t.emit(Block{Cid: c, Data: raw}); err != nil {
			return nil, nil, false, err
		}
	}
	return n, raw, dup, nil
}

// getter exposes t.get as a Getter for the path and file helpers.
func (t *traversal) getter() Getter {
	return GetterFunc(func(ctx context.Context, c cid.Cid) ([]byte, error) {
		_, raw, _, err := t.get(c)
		return raw, err
	})
}

func (t *traversal) run(req Request) (*Result, error) {
	if err := checkCID(req.Root); err != nil {
		return nil, fmt.Errorf("root %s: %w", req.Root, err)
	}
	n, _, _, err := t.get(req.Root)
	if err != nil {
		return nil, err
	}
	visit := func(*Node, []byte) error { return nil }
	g := t.getter()
	for _, s := range req.Path {
		l, err := lookup(t.ctx, g, n, s, visit)
		if err != nil {
			return nil, err
		}
		if n, _, _, err = t.get(l.Cid); err != nil {
			return nil, err
		}
	}
	res := &Result{Node: n}
	switch req.Scope {
	case ScopeBlock:
		return res, nil
	case ScopeEntity:
	case ScopeAll, "":
		return res, t.all(n, 0)
	default:
		return nil, fmt.Errorf("dag-scope %q: unknown", req.Scope)
	}
	// Entity scope.
	switch {
	case n.IsFile():
		start, end := uint64(0), n.FileSize
		if req.Bytes != nil {
			start, end = req.Bytes.Bounds(n.FileSize)
		}
		res.Start, res.End = start, end
		w := fileWalk{ctx: t.ctx, start: start, end: end, whole: make(map[string]uint64),
			visit: func(*Node, uint64) error { return nil },
			get: func(c cid.Cid) (*Node, error) {
				n, _, _, err := t.get(c)
				return n, err
			}}
		return res, w.walk(n, 0, 0)
	case n.Kind == KindHAMTShard:
		return res, hamtEntries(t.ctx, g, n, func(Entry) error { return nil })
	}
	return res, nil
}

// all emits the whole DAG under n, pre-order; a block seen before has had
// its sub-DAG emitted already and is not descended again.
func (t *traversal) all(n *Node, depth int) error {
	if depth > 256 {
		return fmt.Errorf("DAG too deep: %w", ErrBadNode)
	}
	for _, l := range n.Links {
		if _, dup := t.seen[l.Cid.KeyString()]; dup {
			continue // its sub-DAG is emitted or being emitted: nothing to read
		}
		child, _, _, err := t.get(l.Cid)
		if err != nil {
			return err
		}
		if err := t.all(child, depth+1); err != nil {
			return err
		}
	}
	return nil
}
