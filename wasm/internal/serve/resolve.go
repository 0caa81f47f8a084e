package serve

import (
	"context"
	"fmt"
	"sort"
	"sync"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// maxNodes bounds the decoded-node cache, in nodes.
const maxNodes = 2048

// nodeCache keeps decoded dag-pb nodes (directories, file roots) by CID, so
// that a page's subresources do not decode the same directories again:
// decoding is the costliest step of a small request in wasm. Only verified
// blocks are decoded. Safe for concurrent use.
type nodeCache struct {
	mu sync.Mutex
	m  map[string]*node.Node
}

func (c *nodeCache) get(k cid.Cid) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k.KeyString()]
}

func (c *nodeCache) put(k cid.Cid, n *node.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*node.Node)
	}
	if len(c.m) >= maxNodes {
		for key := range c.m { // drop an arbitrary eighth
			delete(c.m, key)
			if len(c.m) < maxNodes*7/8 {
				break
			}
		}
	}
	c.m[k.KeyString()] = n
}

// flight is a directory read in progress that other responses wait for.
type flight struct {
	done chan struct{}
	n    *node.Node // nil when the read failed
}

// getNode returns the decoded node c, read through sess. Concurrent
// responses that need the same interior node (a page's files in one
// directory, all requested at once) wait for the first one's read instead
// of each fetching the directory; when it fails they read it themselves.
func (s *Server) getNode(ctx context.Context, sess *session, c cid.Cid) (*node.Node, error) {
	if n := s.nodes.get(c); n != nil {
		return n, nil
	}
	if c.Type() != node.CodecDagPB {
		return s.readNode(ctx, sess, c)
	}
	k := c.KeyString()
	s.flightMu.Lock()
	if f, ok := s.flights[k]; ok {
		s.flightMu.Unlock()
		select {
		case <-f.done:
			if f.n != nil {
				return f.n, nil
			}
			return s.readNode(ctx, sess, c)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.flights == nil {
		s.flights = make(map[string]*flight)
	}
	f := &flight{done: make(chan struct{})}
	s.flights[k] = f
	s.flightMu.Unlock()
	n, err := s.readNode(ctx, sess, c)
	f.n = n
	s.flightMu.Lock()
	delete(s.flights, k)
	s.flightMu.Unlock()
	close(f.done)
	return n, err
}

// readNode reads and decodes c through sess, caching interior nodes.
func (s *Server) readNode(ctx context.Context, sess *session, c cid.Cid) (*node.Node, error) {
	raw, err := sess.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	n, err := node.Decode(c, raw)
	if err != nil {
		return nil, err
	}
	if c.Type() == node.CodecDagPB {
		s.nodes.put(c, n)
	}
	return n, nil
}

// resolve walks segs from root and returns the node at the end. Before
// each block it sets what a fetch would ask for: the rest of the path from
// the deepest node known, then tail (index.html), with the byte range
// hint, so one request brings everything still missing and nothing the
// cache holds above it. Errors wrap node.ErrNoSuchPath, node.ErrNotDir,
// ErrSource or ErrNoSource.
func (s *Server) resolve(ctx context.Context, sess *session, root cid.Cid, segs, tail []string, hint *node.ByteRange) (*node.Node, error) {
	want := func(c cid.Cid, rest []string) {
		r := node.Request{Root: c, Path: append(append([]string{}, rest...), tail...), Scope: node.ScopeEntity, Bytes: hint}
		sess.setWant(func() node.Request { return r })
	}
	want(root, segs)
	n, err := s.getNode(ctx, sess, root)
	if err != nil {
		return nil, err
	}
	for i, seg := range segs {
		switch n.Kind {
		case node.KindDirectory:
			l, ok := findLink(n, seg)
			if !ok {
				return nil, fmt.Errorf("%q: %w", seg, node.ErrNoSuchPath)
			}
			want(l.Cid, segs[i+1:])
			if n, err = s.getNode(ctx, sess, l.Cid); err != nil {
				return nil, err
			}
		case node.KindHAMTShard:
			// node knows how to read shards; they are few and small.
			want(n.Cid, segs[i:])
			return node.Resolve(ctx, sess, n.Cid, segs[i:])
		default:
			return nil, fmt.Errorf("%q under a %s: %w", seg, n.Kind, node.ErrNotDir)
		}
	}
	return n, nil
}

// findLink finds name among a basic directory's links: sorted, as UnixFS
// writes them, else (another encoder) by a linear scan.
func findLink(dir *node.Node, name string) (node.Link, bool) {
	i := sort.Search(len(dir.Links), func(i int) bool { return dir.Links[i].Name >= name })
	if i < len(dir.Links) && dir.Links[i].Name == name {
		return dir.Links[i], true
	}
	for _, l := range dir.Links {
		if l.Name == name {
			return l, true
		}
	}
	return node.Link{}, false
}
