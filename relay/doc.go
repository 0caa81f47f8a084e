// Package relay is the wire format of Hearth's relay: the signalling,
// tracker and root-record service that lets seeders and browser tabs find
// each other and set up WebRTC connections.
//
// The protocol runs over one WebSocket per peer. Every message is one text
// frame holding one JSON object with a version and a type,
// {"v":1,"type":"…",…}; Message is its one Go shape. The relay opens with a
// challenge (a random nonce); the peer answers hello with its ed25519 node
// key and a signature of HelloDomain+nonce; after the welcome it may
// announce, find, signal, publish and subscribe to root records and ask for
// ICE (STUN/TURN) servers. relay/README.md documents every message with an
// example, the limits and how find picks peers.
//
// This package holds only the message types, their encoding, the hello
// signature and the error codes; the server is relay/server and the client
// relay/client. It builds for GOOS=js GOARCH=wasm.
package relay
