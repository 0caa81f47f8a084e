// Package gateway is Hearth's HTTP face, shared by the origin, the seeders
// and (for the client half) the browser: the IPFS Trustless Gateway, the
// root-record endpoints, site file serving, and a verifying client.
//
// # Server
//
//   - [Trustless] serves GET and HEAD /ipfs/{cid}[/{path}] as the Trustless
//     Gateway spec says (https://specs.ipfs.tech/http-gateways/trustless-gateway/):
//     one block for ?format=raw or Accept: application/vnd.ipld.raw, a CARv1
//     for ?format=car or Accept: application/vnd.ipld.car, with dag-scope and
//     entity-bytes. CARs are always `version=1; order=dfs; dups=n`, produced
//     by node.Traverse, so a client can check every block as it arrives.
//   - [Records] serves a site's signed root records at the well-known paths
//     below, and pushes each new record to subscribers as a server-sent event.
//   - [Site] serves the files of a site's latest root at their paths.
//
// Every handler maps errors to status codes through one function, [StatusOf].
//
// # Well-known paths
//
// {site} is the site ID's text form (node.SiteID.String). All three paths
// answer 404 for a site the node does not serve and 400 for a malformed ID.
//
//	GET /.well-known/hearth/{site}/record
//	    The latest root record, wire form (node.RootRecord.Bytes), as
//	    Content-Type application/vnd.hearth.root-record with
//	    Cache-Control: no-cache and ETag "{site}.{seq}"; 404 before the first.
//	GET /.well-known/hearth/{site}/records[?since=SEQ]
//	    The revision log, oldest first, as Content-Type
//	    application/vnd.hearth.root-records: each record preceded by its
//	    length as a big-endian uint16. Only records with a sequence above
//	    SEQ when given.
//	GET /.well-known/hearth/{site}/events
//	    A text/event-stream (https://html.spec.whatwg.org/multipage/server-sent-events.html).
//	    On connect, the latest record if its sequence is above the
//	    Last-Event-ID request header (or ?since=SEQ); then each new record
//	    as it is accepted, within milliseconds. Each event is
//	    "event: record", "id: {seq}" and "data: {standard base64 of the wire form}".
//	    A comment line is sent every 15 s so that proxies and clients can
//	    tell a quiet stream from a dead one.
//	    Open streams are bounded per client (an IPv4 address or an IPv6
//	    /64) and in all (StreamLimits); past a bound the answer is 503
//	    with Retry-After.
//
// Records are self-authenticating: a client verifies each with
// node.ParseRootRecordFor and keeps only a higher sequence than it holds, so
// any node may relay them.
//
// # Client
//
// [Fetcher] fetches blocks and CARs from a list of gateways, verifies every
// block before anyone uses it, and moves to the next source when one fails,
// is too slow, or lies (a lying source is dropped). [Replicator] copies a DAG
// into a node.Blockstore fetching only the blocks the store lacks, in
// parallel. [FetchRecord], [FetchHistory] and [FollowEvents] read the
// well-known paths.
//
// The package builds for GOOS=js GOARCH=wasm too: the browser uses the same
// client and the same verification.
package gateway
