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

// CAR fetches the blocks of req (Trustless Gateway semantics: root, path,
// dag-scope, entity-bytes) as a CAR stream from the sources in turn,
// checks that each block is exactly the next one node.Traverse expects,
// and stores every verified block that bs lacks, in durable batches of up
// to 4 MiB. Memory is bounded by that batch whatever the size of the DAG.
//
// When a source fails part-way the request starts again at the next
// source; blocks already stored stay stored (but are downloaded again, as
// the server cannot know what the client holds). Errors wrap ErrNoSources
// (with each source's reason), the traversal's content errors
// (node.ErrNoSuchPath, node.ErrBadNode, ...) or the context's error.
func (f *Fetcher) CAR(ctx context.Context, req node.Request, bs node.Blockstore) (*node.Result, error) {
	var errs []error
	for _, s := range f.order() {
		res, err := f.carFrom(ctx, s, req, bs)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fetching CAR %s: %w", ipfsPath(req.Root, req.Path), ctx.Err())
		}
		if f.judge(s, err) {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, noSources("fetching CAR "+ipfsPath(req.Root, req.Path), len(f.sources), errs)
}

// errIdle is the cancellation cause when a CAR source stalls.
var errIdle = errors.New("no block within the idle timeout")

// bodyReader wraps a response body: it remembers the transport's first
// error (so that a broken connection is not mistaken for a malformed CAR)
// and refuses to read past limit bytes.
type bodyReader struct {
	r     io.Reader
	left  int64
	limit int64
	err   error
}

var errCARTooLarge = errors.New("CAR response exceeds the size limit")

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("%d bytes: %w: %w", b.limit, errCARTooLarge, node.ErrTooLarge)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if err != nil && !errors.Is(err, io.EOF) && b.err == nil {
		b.err = err
	}
	return n, err
}

func (f *Fetcher) carFrom(ctx context.Context, s *source, req node.Request, bs node.Blockstore) (*node.Result, error) {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := f.opts.IdleTimeout
	watchdog := time.AfterFunc(idle, func() { cancel(errIdle) })
	defer watchdog.Stop()

	where := fmt.Sprintf("CAR %s from %s", ipfsPath(req.Root, req.Path), s.base)
	wrap := func(err error) error { return fmt.Errorf("%s: %w", where, err) }
	// classifyRead turns a failure to read the stream into the right kind.
	classifyRead := func(body *bodyReader, err error) error {
		return classifyCARRead(ctx, rctx, body, err, "traversal", wrap)
	}

	hreq, err := http.NewRequestWithContext(rctx, http.MethodGet, carURL(s.base, req), nil)
	if err != nil {
		return nil, wrap(fmt.Errorf("%w: %v", ErrBadURL, err))
	}
	hreq.Header.Set("Accept", CARContentType)
	resp, err := f.client.Do(hreq)
	if err != nil {
		if errors.Is(context.Cause(rctx), errIdle) {
			return nil, wrap(fmt.Errorf("%w: %v", ErrTooSlow, err))
		}
		return nil, wrap(transportErr(ctx, rctx, err))
	}
	// Not closeBody: a hostile body may be endless, and draining it is useless.
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return nil, wrap(err)
	}
	if err := checkCARType(resp); err != nil {
		return nil, wrap(err)
	}
	watchdog.Reset(idle)
	body := &bodyReader{r: resp.Body, left: f.opts.MaxCARBytes, limit: f.opts.MaxCARBytes}
	cr, err := node.NewCARReader(body)
	if err != nil {
		return nil, classifyRead(body, err)
	}

	st := node.NewBatchWriter(bs, 4<<20)
	st.SkipStored, st.OnStored = true, f.opts.OnStored
	taken := make(map[string]struct{}) // keys of blocks taken from the stream
	src := node.GetterFunc(func(gctx context.Context, c cid.Cid) ([]byte, error) {
		k := c.KeyString()
		if _, ok := taken[k]; ok {
			// Traverse asks again for a block it has seen (a duplicate in
			// the DAG): it is in the batch or already stored.
			return st.Get(gctx, c)
		}
		b, err := cr.Next()
		if err != nil {
			return nil, classifyRead(body, err)
		}
		if !b.Cid.Equals(c) {
			return nil, wrap(fmt.Errorf("%w: got block %s, want %s: %w", ErrLied, b.Cid, c, node.ErrUnexpectedBlock))
		}
		if err := node.Verify(c, b.Data); err != nil {
			return nil, wrap(fmt.Errorf("%w: %w", ErrLied, err))
		}
		watchdog.Reset(idle)
		if err := f.wait(gctx, len(b.Data)); err != nil {
			return nil, err
		}
		taken[k] = struct{}{}
		if err := st.Put(gctx, b); err != nil {
			return nil, err
		}
		s.succeeded(len(b.Data))
		return b.Data, nil
	})
	res, err := node.Traverse(rctx, src, req, func(node.Block) error { return nil })
	// Keep what was verified even if the stream broke later.
	if ferr := st.Flush(context.WithoutCancel(ctx)); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() == nil {
			// Traverse saw our own cancellation (the watchdog).
			return nil, classifyRead(body, err)
		}
		return nil, err
	}
	return res, nil
}

// classifyCARRead turns a failure to read a CAR stream (body, read under
// rctx, a child of the caller's ctx) into the right kind of error, wrapped
// by wrap: the caller's own end, a source too slow (ErrTooSlow), one that
// sent too much or malformed bytes (ErrLied), or one that failed or ended
// early (ErrSourceFailed) before the walk named what did.
func classifyCARRead(ctx, rctx context.Context, body *bodyReader, err error, walk string, wrap func(error) error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(context.Cause(rctx), errIdle):
		return wrap(fmt.Errorf("%w: %v", ErrTooSlow, errIdle))
	case errors.Is(err, errCARTooLarge):
		return wrap(fmt.Errorf("%w: %w", ErrLied, err))
	case body.err != nil:
		return wrap(fmt.Errorf("%w: %v", ErrSourceFailed, body.err))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return wrap(fmt.Errorf("%w: the CAR ends before the %s does", ErrSourceFailed, walk))
	}
	return wrap(fmt.Errorf("%w: malformed CAR: %v", ErrLied, err))
}
