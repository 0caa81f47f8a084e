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

// membersRefresh is how often the origin hands its member list to the
// relay again even when it has not changed, so that a relay that restarted
// (and forgot it) follows the site's policy again within that time.
const membersRefresh = 30 * time.Second

// pushRecords hands every new root record of feed, and every new member
// list of members (nil: none), to the relay at url as soon as it is signed,
// so that the relay's subscribers (visitors' page agents, and through them
// their service workers) learn of a republish within a relay hop, without
// waiting for a seeder to pass it on, and the relay's find follows the
// site's members at once. It runs until ctx ends; a relay that is down
// delays records, never the origin.
func pushRecords(ctx context.Context, url string, feed *gateway.RecordFeed, members *gateway.MemberFeed, log *slog.Logger) error {
	rc, err := relayclient.New(relayclient.Config{URL: url, Logger: log})
	if err != nil {
		log.Warn("not pushing root records to the relay", "relay", url, "err", err)
		return nil
	}
	defer rc.Close()
	var pushed, pushedMembers uint64
	var membersChanged <-chan struct{}
	refresh := time.NewTicker(membersRefresh)
	defer refresh.Stop()
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
		if members != nil {
			membersChanged = members.Changed()
			if l := members.Latest(); l != nil && l.Seq > pushedMembers {
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := rc.PublishMembers(pctx, l)
				cancel()
				switch {
				case err == nil || errors.Is(err, relay.ErrStaleRecord):
					pushedMembers = l.Seq
				case ctx.Err() != nil:
					return nil
				default:
					log.Warn("pushing the member list to the relay failed", "relay", url, "seq", l.Seq, "err", err)
					retry = true
				}
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
		case <-membersChanged:
		case <-refresh.C:
			pushedMembers = 0
		case <-again:
		}
	}
}
