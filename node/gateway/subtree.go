package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
)

// maxFrontier bounds the links a subtree stream may owe at once (the
// depth-first frontier: the unvisited siblings along the current path).
// A legitimate DAG stays far below it; a hostile one is refused.
const maxFrontier = 1 << 18

// subtreeFlushBlocks is how many blocks a subtree stream gathers before a
// durable write, besides the byte limit of the batch, so that a stream of
// tiny blocks keeps few of them in memory.
const subtreeFlushBlocks = 4096

// subtree makes the store hold the whole DAG under c, streamed as one
// dag-scope=all CAR from the sources in turn. Every block is verified and
// must be the next one a depth-first, pre-order walk expects, or one that
// walk already met (dups=n: the store has it); every block received is
// written in durable batches, then reported to onStored, without a lookup
// per block. add is called once per block received, with
// its length, before it is stored, and may stop the stream with an error.
// Memory is bounded by one batch and the frontier, whatever the DAG's
// size. It returns nil once the DAG under c is stored; an error wrapping
// ErrNoSources when no source could send it all (what arrived is kept),
// a content error (node.ErrBadNode, ...), add's error or ctx's.
func (r *Replicator) subtree(ctx context.Context, c cid.Cid, add func(int) error, onStored func(int, int64)) error {
	var errs []error
	for _, s := range r.f.order() {
		err := r.subtreeFrom(ctx, s, c, add, onStored)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("fetching DAG %s: %w", c, ctx.Err())
		}
		if r.f.judge(s, err) {
			return err
		}
		errs = append(errs, err)
	}
	return noSources("fetching DAG "+c.String(), len(r.f.sources), errs)
}

func (r *Replicator) subtreeFrom(ctx context.Context, s *source, root cid.Cid, add func(int) error, onStored func(int, int64)) error {
	f := r.f
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := f.opts.IdleTimeout
	watchdog := time.AfterFunc(idle, func() { cancel(errIdle) })
	defer watchdog.Stop()
	where := fmt.Sprintf("CAR %s from %s", root, s.base)
	wrap := func(err error) error { return fmt.Errorf("%s: %w", where, err) }

	hreq, err := http.NewRequestWithContext(rctx, http.MethodGet, carURL(s.base, node.Request{Root: root, Scope: node.ScopeAll}), nil)
	if err != nil {
		return wrap(fmt.Errorf("%w: %v", ErrBadURL, err))
	}
	hreq.Header.Set("Accept", CARContentType)
	resp, err := f.client.Do(hreq)
	if err != nil {
		if errors.Is(context.Cause(rctx), errIdle) {
			return wrap(fmt.Errorf("%w: %v", ErrTooSlow, err))
		}
		return wrap(transportErr(ctx, rctx, err))
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return wrap(err)
	}
	if err := checkCARType(resp); err != nil {
		return wrap(err)
	}
	watchdog.Reset(idle)
	body := &bodyReader{r: resp.Body, left: f.opts.MaxCARBytes, limit: f.opts.MaxCARBytes}
	classifyRead := func(err error) error {
		return classifyCARRead(ctx, rctx, body, err, "DAG", wrap)
	}
	cr, err := node.NewCARReader(body)
	if err != nil {
		return classifyRead(err)
	}

	// Every block received is written, without asking the store first:
	// it has been downloaded already, and in the store (an LSM) a blind
	// write costs less than the random lookup that could spare it, which
	// for a DAG of many tiny blocks would be most of the replication's
	// time. A block the store held is rewritten with the same bytes.
	w := node.NewBatchWriter(r.bs, r.opts.BatchBytes)
	w.OnStored = onStored
	// Keep what was verified even if the stream breaks later.
	defer func() { _ = w.Flush(context.WithoutCancel(ctx)) }()
	pending := 0

	// expected is the frontier of the walk, next block last.
	expected := []cid.Cid{root}
	// skipMet drops from the frontier the blocks the walk met before (they
	// are stored or pending): the server does not send them again.
	skipMet := func() error {
		for len(expected) > 0 {
			has, err := w.Has(rctx, expected[len(expected)-1])
			if err != nil {
				return err
			}
			if !has {
				return nil
			}
			expected = expected[:len(expected)-1]
		}
		return nil
	}
	for {
		b, err := cr.Next()
		if errors.Is(err, io.EOF) {
			if err := skipMet(); err != nil {
				return err
			}
			if len(expected) > 0 {
				return wrap(fmt.Errorf("%w: the CAR ends before the DAG does (%s missing)", ErrSourceFailed, expected[len(expected)-1]))
			}
			if err := w.Flush(ctx); err != nil {
				return err
			}
			return nil
		}
		if err != nil {
			return classifyRead(err)
		}
		if len(expected) > 0 && !b.Cid.Equals(expected[len(expected)-1]) {
			if err := skipMet(); err != nil {
				return err
			}
		}
		if len(expected) == 0 || !b.Cid.Equals(expected[len(expected)-1]) {
			return wrap(fmt.Errorf("%w: got block %s, not the next of the DAG: %w", ErrLied, b.Cid, node.ErrUnexpectedBlock))
		}
		expected = expected[:len(expected)-1]
		if err := node.Verify(b.Cid, b.Data); err != nil {
			return wrap(fmt.Errorf("%w: %w", ErrLied, err))
		}
		watchdog.Reset(idle)
		if err := f.wait(rctx, len(b.Data)); err != nil {
			return err
		}
		if err := add(len(b.Data)); err != nil {
			return err
		}
		if b.Cid.Type() != node.CodecRaw {
			n, err := node.Decode(b.Cid, b.Data)
			if err != nil {
				return fmt.Errorf("%s: %w", b.Cid, err)
			}
			if len(expected)+len(n.Links) > maxFrontier {
				return fmt.Errorf("DAG %s: more than %d links pending in a depth-first walk: %w", root, maxFrontier, node.ErrBadNode)
			}
			for i := len(n.Links) - 1; i >= 0; i-- {
				expected = append(expected, n.Links[i].Cid)
			}
		}
		if err := w.Put(rctx, b); err != nil {
			return err
		}
		s.succeeded(len(b.Data))
		if pending++; pending >= subtreeFlushBlocks {
			if err := w.Flush(rctx); err != nil {
				return err
			}
			pending = 0
		}
	}
}
