package fuse

import (
	"context"
	"errors"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// collect deletes the blocks of old that no root in keep references
// (mark and sweep restricted to old's DAG). Missing blocks are skipped.
func collect(ctx context.Context, bs node.Blockstore, old cid.Cid, keep []cid.Cid) error {
	live := make(map[string]struct{})
	for _, k := range keep {
		if err := walk(ctx, bs, k, live, nil); err != nil {
			return err
		}
	}
	var dead []cid.Cid
	if err := walk(ctx, bs, old, make(map[string]struct{}), func(c cid.Cid) {
		if _, ok := live[c.KeyString()]; !ok {
			dead = append(dead, c)
		}
	}); err != nil {
		return err
	}
	for _, c := range dead {
		if err := bs.Delete(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// walk visits every block reachable from root once; raw leaves are not read.
func walk(ctx context.Context, bs node.Blockstore, root cid.Cid, seen map[string]struct{}, visit func(cid.Cid)) error {
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := seen[c.KeyString()]; ok {
			continue
		}
		seen[c.KeyString()] = struct{}{}
		if visit != nil {
			visit(c)
		}
		if c.Type() != node.CodecDagPB {
			continue
		}
		n, _, err := node.GetNode(ctx, bs, c)
		if errors.Is(err, node.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		for _, l := range n.Links {
			stack = append(stack, l.Cid)
		}
	}
	return nil
}
