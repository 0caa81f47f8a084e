package exchange

import (
	"context"
	"fmt"
	"io"

	"github.com/hearthcdn/hearth/node"
)

// Fallback fetches what the swarm cannot, typically from the origin's
// Trustless Gateway (GET /ipfs/{root}/{path}?dag-scope=…&entity-bytes=…,
// Accept: application/vnd.ipld.car). CAR fetches req's blocks, verifies
// each one as node.Traverse does, stores them in bs and returns the
// traversal's result. *gateway.Fetcher (node/gateway) is one; CARStream
// makes one from any source of raw CAR streams.
type Fallback interface {
	CAR(ctx context.Context, req node.Request, bs node.Blockstore) (*node.Result, error)
}

// CARStream is a Fallback over a function that returns req's answer as a
// raw CAR stream (order=dfs; duplicate blocks are tolerated). The stream is
// untrusted: its blocks are verified exactly as a peer's are (node.Traverse
// over the stream: each block must hash to its CID and be the block the
// traversal expects next).
type CARStream func(ctx context.Context, req node.Request) (io.ReadCloser, error)

// CAR implements Fallback.
func (f CARStream) CAR(ctx context.Context, req node.Request, bs node.Blockstore) (*node.Result, error) {
	rc, err := f(ctx, req)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	cr, err := node.NewCARReader(rc)
	if err != nil {
		return nil, err
	}
	sk := node.NewBatchWriter(bs, 4<<20)
	// A gateway is not banned: a malformed tail after a verified answer
	// (late) changes nothing.
	res, _, err := verifyAnswer(ctx, &dedupSource{src: carSource{r: cr}, seen: make(map[string]struct{})}, req, sk)
	if ferr := sk.Flush(context.WithoutCancel(ctx)); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("verifying CAR: %w", err)
	}
	return res, nil
}
