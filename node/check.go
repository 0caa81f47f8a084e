package node

import (
	"context"
	"errors"
	"fmt"

	cid "github.com/ipfs/go-cid"
)

// Problem is a block of a DAG that a store lacks or that does not verify.
// Err wraps ErrNotFound, ErrCorrupt or ErrBadNode.
type Problem struct {
	Cid cid.Cid
	Err error
}

// CheckDAG reads and verifies every block reachable from root through g,
// going on past missing and corrupt blocks (whose sub-DAGs cannot be
// seen), and calls problem for each one; problem returns false to stop the
// walk. It returns the number of distinct blocks visited. Errors are only
// ctx's or the store's other failures.
func CheckDAG(ctx context.Context, g Getter, root cid.Cid, problem func(Problem) bool) (int, error) {
	seen := make(map[string]struct{})
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return len(seen), err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := seen[c.KeyString()]; ok {
			continue
		}
		seen[c.KeyString()] = struct{}{}
		raw, err := g.Get(ctx, c)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return len(seen), fmt.Errorf("checking %s: %w", c, err)
		}
		if err == nil {
			err = Verify(c, raw)
		}
		var n *Node
		if err == nil {
			n, err = Decode(c, raw)
		}
		if err != nil {
			if !problem(Problem{Cid: c, Err: err}) {
				return len(seen), nil
			}
			continue
		}
		for i := len(n.Links) - 1; i >= 0; i-- {
			stack = append(stack, n.Links[i].Cid)
		}
	}
	return len(seen), nil
}
