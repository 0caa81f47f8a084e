package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hearthcdn/hearth/node/gateway"
	"github.com/hearthcdn/hearth/relay"
	relayclient "github.com/hearthcdn/hearth/relay/client"
)

// pushRecords hands every new root record of feed to the relay at url as
// soon as it is signed, so that the relay's subscribers (visitors' page
// agents, and through them their service workers) learn of a republish
// within a relay hop, without waiting for a seeder to pass it on. It runs
// until ctx ends; a relay that is down delays records, never the origin.
func pushRecords(ctx context.Context, url string, feed *gateway.RecordFeed, log *slog.Logger) error {
	rc, err := relayclient.New(relayclient.Config{URL: url, Logger: log})
	if err != nil {
		log.Warn("not pushing root records to the relay", "relay", url, "err", err)
		return nil
	}
	defer rc.Close()
	var pushed uint64
	for {
		changed := feed.Changed() // before Latest: no record is missed
		retry := false
		if rec := feed.Latest(); rec != nil && rec.Seq > pushed {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := rc.PublishRecord(pctx, rec)
			cancel()
			switch {
			case err == nil || errors.Is(err, relay.ErrStaleRecord):
				pushed = rec.Seq
			case ctx.Err() != nil:
				return nil
			default:
				log.Warn("pushing the root record to the relay failed", "relay", url, "seq", rec.Seq, "err", err)
				retry = true
			}
		}
		var again <-chan time.Time
		if retry {
			again = time.After(time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-again:
		}
	}
}
