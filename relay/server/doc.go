// Package relayserver is the server side of Hearth's relay (protocol in
// package relay, relay/README.md): a WebSocket endpoint for signalling, the
// tracker (announce/find), root-record publish/subscribe, plus STUN and TURN
// on UDP.
//
// The Server does not open listeners. Serve Server.Handler (the WebSocket
// endpoint at /ws, /healthz and /metrics) from an http.Server and, for
// STUN/TURN, hand a UDP socket to NewTURN. Server.Close ends every
// connection and waits for every goroutine the Server started.
//
// coder/websocket accepts each connection; from then on the relay frames it
// itself. On Linux, epoll event loops (one per CPU) own the sockets, so an
// idle peer costs no goroutine and no buffer; TLS connections and other
// systems use a reader goroutine per connection instead. Either way every
// message is handled without blocking, output goes through a bounded
// per-peer buffer written with non-blocking writes, and a peer that does
// not drain it is dropped. One sweeper goroutine enforces every timeout.
package relayserver
