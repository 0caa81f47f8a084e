// Package exchange moves blocks between Hearth peers over WebRTC data
// channels, every one verified.
//
// A request is the IPFS Trustless Gateway's — a root CID, a path, a scope
// (block, entity, all) and optionally entity-bytes — or a list of block
// CIDs; the answer is the blocks in traversal order. Both sides run
// node.Traverse: the Server over its store, to produce the answer; the
// Fetcher over the stream it receives, so that every block is checked
// against its CID and against the block the traversal expects next, with the
// same code. A peer that sends a bad or unexpected block is banned and the
// request goes elsewhere.
//
// The pieces:
//   - the wire format (wire.go; README.md): binary messages of at most
//     MaxMessage bytes, multiplexed by request id, with per-request credit,
//     cancel and error codes;
//   - Server: answers requests from a node.Getter, with limits on peers,
//     concurrent requests and upload rate, and per-peer accounting
//     (Stats, and a prometheus.Collector natively);
//   - Fetcher: finds peers (Finder), connects lazily (Dialer), splits a
//     fetch over peers, hedges the tail, bans liars, falls back to the
//     origin (Fallback), and stores what it verified;
//   - Transport: WebRTC connections (pion natively, the browser's
//     RTCPeerConnection under js/wasm) set up by trickle ICE through a
//     Signaler such as the relay.
//
// The protocol needs only a Conn (whole messages, in order), so tests can
// run it over an in-memory pipe; the Transport makes Conns from detached
// data channels.
package exchange
