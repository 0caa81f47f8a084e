package seeder

import (
	"context"
	"errors"
	"fmt"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

// replicateLoop replicates the latest record's root whenever it is newer
// than the newest pin, then pins it and collects garbage. It first checks
// the pins left by an earlier run (completing any block lost since) and
// notes their blocks as present; it does not collect garbage then, so the
// blocks of a replication cut short by a crash are kept and not fetched
// again. A root that does not fit MaxStorage, or whose DAG is not UnixFS
// Hearth can read, is refused until a newer record arrives; any other
// failure is retried with a backoff from 1 s doubling to 30 s, or at once
// when a newer record arrives. Only this goroutine writes pins and deletes
// blocks (but for corrupt copies, see onCorrupt), so garbage collection
// never races a replication.
func (s *Seeder) replicateLoop(ctx context.Context) error {
	s.checkPins(ctx)
	backoff := time.Second
	retryTimer := time.NewTimer(time.Hour)
	retryTimer.Stop()
	defer retryTimer.Stop()
	var retry <-chan time.Time // non-nil while waiting to retry
	for {
		changed := s.feed.Changed()
		rec := s.feed.Latest()
		if rec != nil && retry == nil && rec.Seq > s.newestPinned() && rec.Seq != s.refused() {
			err := s.replicate(ctx, rec)
			switch {
			case err == nil:
				backoff = time.Second
				continue
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, gateway.ErrExceedsLimit), errors.Is(err, node.ErrBadNode),
				errors.Is(err, node.ErrUnsupportedCodec), errors.Is(err, node.ErrUnsupportedHash):
				s.mu.Lock()
				s.refusedSeq, s.lastErr = rec.Seq, err.Error()
				s.mu.Unlock()
				s.m.RootsRefused.Inc()
				if errors.Is(err, gateway.ErrExceedsLimit) {
					s.log.Error("refusing root: it does not fit --max-storage", "seq", rec.Seq, "root", rec.Root.String(),
						"max_storage", s.cfg.MaxStorage, "err", err)
				} else {
					s.log.Error("refusing root: its DAG is malformed", "seq", rec.Seq, "root", rec.Root.String(), "err", err)
				}
				if err := s.gc(ctx, rec.Root); err != nil {
					s.log.Warn("garbage collection failed", "err", err)
				}
			default:
				s.setErr(err)
				s.log.Warn("replication failed; will retry", "seq", rec.Seq, "in", backoff, "err", err)
				retryTimer.Reset(backoff)
				retry = retryTimer.C
				backoff = min(2*backoff, 30*time.Second)
			}
		}
		select {
		case <-changed:
			retryTimer.Stop()
			retry = nil
		case <-retry:
			retry = nil
		case <-s.repair:
			s.checkPins(ctx)
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *Seeder) newestPinned() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pins) == 0 {
		return 0
	}
	return s.pins[0].Seq
}

func (s *Seeder) refused() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refusedSeq
}

func (s *Seeder) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

// replicate fetches rec's DAG, then pins it and collects garbage.
func (s *Seeder) replicate(ctx context.Context, rec *node.RootRecord) error {
	s.mu.Lock()
	s.replicating = rec.Seq
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.replicating = 0
		s.mu.Unlock()
	}()
	start := time.Now()
	s.log.Info("replicating", "seq", rec.Seq, "root", rec.Root.String())
	_, st, err := s.replicator.Replicate(ctx, rec.Root, nil)
	if err != nil {
		return fmt.Errorf("replicating seq %d (%s): %w", rec.Seq, rec.Root, err)
	}
	// Every block is durably stored: only now may the root be pinned.
	p := Pin{Seq: rec.Seq, Root: rec.Root, Bytes: st.Bytes}
	if err := node.PutPin(s.cfg.Store, s.cfg.Site, p); err != nil {
		return fmt.Errorf("pinning seq %d: %w", rec.Seq, err)
	}
	s.mu.Lock()
	s.pins = append([]Pin{p}, s.pins...)
	s.lastErr = ""
	s.mu.Unlock()
	s.updateGauges()
	s.log.Info("pinned", "seq", p.Seq, "root", p.Root.String(), "blocks", st.Blocks, "bytes", st.Bytes,
		"fetched_blocks", st.Fetched, "fetched_bytes", st.FetchedBytes, "took", time.Since(start).Round(time.Millisecond))
	if err := s.gc(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("garbage collection failed", "err", err)
	}
	return nil
}

// checkPins re-walks every pinned DAG and fetches any block that is
// missing (lost to a disk error, or deleted as corrupt while serving).
func (s *Seeder) checkPins(ctx context.Context) {
	for _, p := range s.Pins() {
		_, st, err := s.replicator.Replicate(ctx, p.Root, nil)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Warn("repairing pinned root", "seq", p.Seq, "root", p.Root.String(), "err", err)
		case st.Fetched > 0:
			s.log.Warn("repaired pinned root", "seq", p.Seq, "root", p.Root.String(), "fetched_blocks", st.Fetched)
		}
	}
}

// gc keeps the newest Keep pins that fit MaxStorage together (the newest
// always stays), unpins the others, then deletes every block no pin keeps
// (node.CollectGarbage). Only the first collection of the process scans
// the whole store, so that what a replication cut short left is collected
// once it is no longer wanted; later ones walk only the DAGs of the roots
// just unpinned and of those in also, such as a refused root's partial DAG
// (node.CollectDropped); after a failed one, the next scans again.
// Unpinning is durable before any block is deleted. If a kept DAG cannot
// be walked (a block is missing), nothing is deleted.
func (s *Seeder) gc(ctx context.Context, also ...cid.Cid) error {
	start := time.Now()
	pins := s.Pins()
	marked := make(map[string]struct{})
	var kept, dropped []Pin
	var total int64
	for i, p := range pins {
		if i >= s.cfg.Keep {
			dropped = append(dropped, p)
			continue
		}
		fresh, size, err := s.mark(ctx, p.Root, marked)
		if err != nil {
			return fmt.Errorf("marking seq %d: %w", p.Seq, err)
		}
		if i > 0 && s.cfg.MaxStorage > 0 && total+size > s.cfg.MaxStorage {
			dropped = append(dropped, p)
			continue
		}
		for k := range fresh {
			marked[k] = struct{}{}
		}
		total += size
		kept = append(kept, p)
	}
	for _, p := range dropped {
		if err := node.DeletePin(s.cfg.Store, s.cfg.Site, p.Seq); err != nil {
			return fmt.Errorf("unpinning seq %d: %w", p.Seq, err)
		}
		s.log.Info("unpinned", "seq", p.Seq, "root", p.Root.String())
	}
	s.mu.Lock()
	s.pins = kept
	s.mu.Unlock()
	s.updateGauges()

	// Other sites' pins and records in the same store are kept too.
	var st node.GCStats
	var err error
	if s.swept {
		roots := also
		for _, p := range dropped {
			roots = append(roots, p.Root)
		}
		st, err = node.CollectDropped(ctx, s.cfg.Store, roots, marked, s.cfg.Site)
	} else {
		st, err = node.CollectGarbage(ctx, s.cfg.Store, marked, s.cfg.Site)
	}
	s.m.GCDeleted.Add(float64(st.Deleted))
	// After a failure, roots may be unpinned and not collected: the next
	// collection scans.
	s.swept = err == nil
	if err != nil {
		return err
	}
	deleted := st.Deleted
	if deleted > 0 || len(dropped) > 0 {
		s.log.Info("collected garbage", "deleted_blocks", deleted, "unpinned", len(dropped), "kept_bytes", total,
			"took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// mark walks the DAG under root and returns the keys of its blocks not in
// already, and their total size in bytes. Sizes are the stored blocks'
// own lengths (a raw leaf is sized in the store), never what links claim,
// so a DAG that understates its Tsize is priced at what it occupies. A
// missing block is an error wrapping node.ErrNotFound.
func (s *Seeder) mark(ctx context.Context, root cid.Cid, already map[string]struct{}) (map[string]struct{}, int64, error) {
	fresh := make(map[string]struct{})
	var size int64
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		k := c.KeyString()
		if _, ok := fresh[k]; ok {
			continue
		}
		if _, ok := already[k]; ok {
			continue
		}
		if c.Type() == node.CodecRaw {
			n, err := s.cfg.Store.GetSize(ctx, c)
			if err != nil {
				return nil, 0, err
			}
			fresh[k] = struct{}{}
			size += int64(n)
			continue
		}
		nd, raw, err := node.GetNode(ctx, s.cfg.Store, c)
		if err != nil {
			return nil, 0, err
		}
		fresh[k] = struct{}{}
		size += int64(len(raw))
		for _, l := range nd.Links {
			stack = append(stack, l.Cid)
		}
	}
	return fresh, size, nil
}
