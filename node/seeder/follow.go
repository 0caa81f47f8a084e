package seeder

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/hearthcdn/hearth/node"
	"github.com/hearthcdn/hearth/node/gateway"
)

// refusal names why a record was refused, for logs and metrics.
func refusal(err error) string {
	switch {
	case errors.Is(err, node.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, node.ErrWrongSite):
		return "wrong_site"
	case errors.Is(err, node.ErrStaleRecord):
		return "stale"
	}
	return "malformed"
}

// isRecordErr reports whether err is about a record's content (as opposed
// to the source being unreachable).
func isRecordErr(err error) bool {
	return errors.Is(err, node.ErrBadRecord) || errors.Is(err, node.ErrBadSignature) || errors.Is(err, node.ErrWrongSite)
}

// Offer verifies a record's wire form, received from the source named
// from, and accepts it if it is for this site and newer than the latest
// held. The same record again is not an error. Errors wrap
// node.ErrBadRecord, node.ErrBadSignature, node.ErrWrongSite or
// node.ErrStaleRecord; each refusal is logged and counted.
func (s *Seeder) Offer(raw []byte, from string) error {
	r, err := node.ParseRootRecordFor(s.cfg.Site, raw)
	if err != nil {
		s.refuse(from, err)
		return err
	}
	return s.accept(r, from)
}

func (s *Seeder) refuse(from string, err error) {
	reason := refusal(err)
	s.m.RecordsRefuse.WithLabelValues(reason).Inc()
	s.log.Warn("refused root record", "from", from, "reason", reason, "err", err)
}

// accept takes a verified record.
func (s *Seeder) accept(r *node.RootRecord, from string) error {
	if cur := s.feed.Latest(); cur != nil && cur.Seq == r.Seq && bytes.Equal(cur.Bytes(), r.Bytes()) {
		return nil // already held: the usual answer to a poll
	}
	if err := s.feed.Accept(r); err != nil {
		if errors.Is(err, node.ErrStaleRecord) || errors.Is(err, node.ErrWrongSite) {
			s.refuse(from, err)
		}
		return err
	}
	s.m.RecordSeq.Set(float64(r.Seq))
	s.log.Info("accepted root record", "from", from, "seq", r.Seq, "root", r.Root.String())
	return nil
}

// followLoop keeps an event stream open to the origin, reconnecting with
// a backoff from 250 ms doubling to 15 s (reset after a stream that
// delivered a record or lasted a minute), until ctx ends.
func (s *Seeder) followLoop(ctx context.Context) error {
	backoff := 250 * time.Millisecond
	for {
		var since uint64
		if r := s.feed.Latest(); r != nil {
			since = r.Seq
		}
		start := time.Now()
		delivered := false
		err := gateway.FollowEvents(ctx, s.cfg.Client, s.sources[0], s.cfg.Site, since, s.cfg.EventIdle, func(raw []byte) {
			delivered = true
			_ = s.Offer(raw, s.sources[0]+" (events)")
		})
		if ctx.Err() != nil {
			return nil
		}
		if delivered || time.Since(start) > time.Minute {
			backoff = 250 * time.Millisecond
		}
		s.log.Debug("event stream ended; reconnecting", "in", backoff, "err", err)
		if !sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

// pollLoop asks every source for the latest record now and then every
// PollInterval: the fallback when the event stream is down, and the way
// records arrive from peers while the origin is down. On a first start it
// also fetches the history, so the seeder can hand out the revision log.
func (s *Seeder) pollLoop(ctx context.Context) error {
	for {
		if s.feed.Latest() == nil {
			s.fetchHistory(ctx)
		}
		s.poll(ctx)
		if !sleep(ctx, s.cfg.PollInterval) {
			return nil
		}
	}
}

func (s *Seeder) poll(ctx context.Context) {
	for _, src := range s.sources {
		r, err := gateway.FetchRecord(ctx, s.cfg.Client, src, s.cfg.Site)
		switch {
		case err == nil:
			_ = s.accept(r, src)
		case ctx.Err() != nil:
			return
		case isRecordErr(err):
			s.refuse(src, err)
		default:
			s.log.Debug("polling record", "source", src, "err", err)
		}
	}
}

// fetchHistory accepts the revision log from the first source that gives
// a valid one, oldest first.
func (s *Seeder) fetchHistory(ctx context.Context) {
	for _, src := range s.sources {
		recs, err := gateway.FetchHistory(ctx, s.cfg.Client, src, s.cfg.Site, 0)
		if err != nil {
			if isRecordErr(err) {
				s.refuse(src, err)
			}
			continue
		}
		for _, r := range recs {
			_ = s.accept(r, src+" (history)")
		}
		if len(recs) > 0 {
			return
		}
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
