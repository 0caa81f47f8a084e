// Package relayclient is the client of Hearth's relay (protocol in package
// relay, relay/README.md), used by seeders (native) and by the page agent
// (GOOS=js GOARCH=wasm, over the browser's WebSocket).
//
// A Client keeps one connection to one relay. It proves its node key in
// hello, and when the connection drops it reconnects with exponential backoff
// and jitter and restores its announcement and subscriptions. Requests
// (Announce, Find, Subscribe, PublishRecord, ICEServers) wait for a live
// connection and the relay's answer, bounded by their context; Signal only
// queues. Incoming signals arrive on Signals, root records on each
// Subscription's channel, verified.
//
//	c, err := relayclient.New(relayclient.Config{URL: "wss://relay.example.org/ws", Key: key})
//	defer c.Close()
//	err = c.Announce(ctx, relayclient.Announcement{Role: relay.RoleSeeder, Capacity: 32,
//		Sites: []relayclient.SiteRoots{{Site: site, Roots: []cid.Cid{root}}}})
//	peers, err := c.Find(ctx, site, 5, nil)
//	err = c.Signal(ctx, peers[0].ID, offerJSON)
//	for s := range c.Signals() { … }
package relayclient
