package main

import (
	"github.com/spf13/cobra"

	"github.com/hearthcdn/hearth/node/gateway"
)

// eventStreamFlags are the bounds on the record event streams a node
// serves (gateway.StreamLimits).
type eventStreamFlags struct {
	perIP, total int
}

// addEventStreamFlags adds --max-event-streams-per-ip and
// --max-event-streams to cmd.
func addEventStreamFlags(cmd *cobra.Command) *eventStreamFlags {
	f := &eventStreamFlags{}
	cmd.Flags().IntVar(&f.perIP, "max-event-streams-per-ip", gateway.DefaultStreamsPerIP,
		"open record event streams allowed from one IPv4 address or IPv6 /64 (more: 503 with Retry-After); 0: no bound")
	cmd.Flags().IntVar(&f.total, "max-event-streams", gateway.DefaultStreams,
		"open record event streams allowed in all (more: 503 with Retry-After); 0: no bound")
	return f
}

// limits returns the flags as gateway.StreamLimits, where 0 (no bound)
// becomes -1.
func (f *eventStreamFlags) limits() gateway.StreamLimits {
	unbounded := func(n int) int {
		if n <= 0 {
			return -1
		}
		return n
	}
	return gateway.StreamLimits{PerIP: unbounded(f.perIP), Total: unbounded(f.total)}
}
